{#- What each customer bought in [as_of_date, as_of_date + var('recommendation_horizon_days'))
    at the matured recommendation snapshots (none before the horizon has passed data_end).
    `is_repeat`: the customer had bought the product before as_of_date, so metrics can be
    split into repeat and new-to-customer items. -#}

with snapshots as (

    select as_of_date, as_of_day
    from {{ ref('int_recommendation_snapshots_selected') }}
    where label_matured

),

lines as (

    select * from {{ ref('int_order_lines_joined_to_orders') }}

),

bought as (

    select
        snapshots.as_of_date,
        lines.customer_id,
        lines.product_id,
        count(distinct lines.order_id) as orders,
        min(lines.ordered_at) as first_ordered_at,
        max(lines.ordered_at) as last_ordered_at
    from snapshots
    inner join lines
        on lines.order_day >= snapshots.as_of_day
        and lines.order_day < snapshots.as_of_day + {{ days_var('recommendation_horizon_days') }}
    group by snapshots.as_of_date, lines.customer_id, lines.product_id

)

select
    bought.as_of_date,
    bought.customer_id,
    bought.product_id,
    cast(bought.orders as {{ dbt.type_int() }}) as orders,
    bought.first_ordered_at,
    bought.last_ordered_at,
    {{ add_days(days_var('recommendation_horizon_days'), 'bought.as_of_date') }} as horizon_end,
    history.product_id is not null as is_repeat
from bought
left join {{ ref('recommendation_interactions') }} as history
    on history.as_of_date = bought.as_of_date
    and history.customer_id = bought.customer_id
    and history.product_id = bought.product_id
