{#- Customer x product purchase histories as of each recommendation snapshot: only
    completed order lines strictly before as_of_date. One row per (as_of_date, customer,
    product) the customer has bought: orders, units, first and last purchase, and orders in
    the trailing 30/90/365 days (what windowed and repeat learners weight by). -#}

with snapshots as (

    select as_of_date, as_of_day from {{ ref('int_recommendation_snapshots_selected') }}

),

lines as (

    select * from {{ ref('int_order_lines_joined_to_orders') }}

)

select
    snapshots.as_of_date,
    lines.customer_id,
    lines.product_id,
    cast(count(distinct lines.order_id) as {{ dbt.type_int() }}) as orders,
    cast(sum(lines.quantity) as {{ dbt.type_int() }}) as units,
    min(lines.ordered_at) as first_ordered_at,
    max(lines.ordered_at) as last_ordered_at,
    cast(count(distinct case when lines.order_day >= snapshots.as_of_day - 30
                             then lines.order_id end) as {{ dbt.type_int() }}) as orders_30d,
    cast(count(distinct case when lines.order_day >= snapshots.as_of_day - 90
                             then lines.order_id end) as {{ dbt.type_int() }}) as orders_90d,
    cast(count(distinct case when lines.order_day >= snapshots.as_of_day - 365
                             then lines.order_id end) as {{ dbt.type_int() }}) as orders_365d
from snapshots
inner join lines
    on lines.order_day < snapshots.as_of_day
group by snapshots.as_of_date, lines.customer_id, lines.product_id
