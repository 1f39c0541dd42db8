{#- The item catalogue as of each recommendation snapshot: every product sold (in a
    completed order) strictly before as_of_date, with when it was first and last sold,
    its buyers in the trailing windows and its latest price. `is_current` marks products
    sold in the last var('catalogue_active_days') days: serving recommends only those. -#}

with snapshots as (

    select as_of_date, as_of_day from {{ ref('int_recommendation_snapshots_selected') }}

),

lines as (

    select * from {{ ref('int_order_lines_joined_to_orders') }}

),

sold_before as (

    select
        snapshots.as_of_date,
        lines.product_id,
        max(lines.category) as category,
        min(lines.ordered_at) as first_sold_at,
        max(lines.ordered_at) as last_sold_at,
        count(distinct lines.customer_id) as buyers,
        count(distinct case when lines.order_day >= snapshots.as_of_day - 30
                            then lines.customer_id end) as buyers_30d,
        count(distinct case when lines.order_day >= snapshots.as_of_day - 90
                            then lines.customer_id end) as buyers_90d,
        max(case when lines.order_day >= snapshots.as_of_day - {{ days_var('catalogue_active_days') }}
                 then 1 else 0 end) as is_current
    from snapshots
    inner join lines
        on lines.order_day < snapshots.as_of_day
    group by snapshots.as_of_date, lines.product_id

)

select
    as_of_date,
    product_id,
    category,
    first_sold_at,
    last_sold_at,
    cast(buyers as {{ dbt.type_int() }}) as buyers,
    cast(buyers_30d as {{ dbt.type_int() }}) as buyers_30d,
    cast(buyers_90d as {{ dbt.type_int() }}) as buyers_90d,
    is_current = 1 as is_current
from sold_before
