-- Leakage and window guard, independent of the day arithmetic in the intermediate
-- models: at two snapshots (the middle of the calendar and the scoring snapshot) recount
-- order features straight from stg_shop__orders with timestamp comparisons
-- (ordered_at < as_of midnight, ordered_at >= as_of - n days) and return every
-- customer_features row that disagrees.
{%- set cutoff = as_of_end() %}

with calendar as (

    select
        as_of_date,
        row_number() over (order by as_of_date) as position,
        count(*) over () as snapshots,
        is_scoring_snapshot
    from {{ ref('snapshot_calendar') }}

),

checked_snapshots as (

    select as_of_date, cast(as_of_date as {{ dbt.type_timestamp() }}) as as_of_at
    from calendar
    where position = cast((snapshots + 1) / 2 as {{ dbt.type_int() }}) or is_scoring_snapshot

),

completed_orders as (

    select customer_id, ordered_at, revenue
    from {{ ref('stg_shop__orders') }}
    where status = 'completed'
    {%- if cutoff %}
      and ordered_at < cast('{{ cutoff }}' as {{ dbt.type_timestamp() }})
    {%- endif %}

),

recounted as (

    select
        snapshots.as_of_date,
        orders.customer_id,
        count(*) as orders_lifetime,
        sum(case when orders.ordered_at >= {{ add_days_to_timestamp(-30, 'snapshots.as_of_at') }} then 1 else 0 end) as orders_30d,
        sum(case when orders.ordered_at >= {{ add_days_to_timestamp(-365, 'snapshots.as_of_at') }} then 1 else 0 end) as orders_365d,
        sum(case when orders.ordered_at >= {{ add_days_to_timestamp(-365, 'snapshots.as_of_at') }} then orders.revenue else 0 end) as revenue_365d,
        {{ dbt.datediff('cast(max(orders.ordered_at) as date)', 'snapshots.as_of_date', 'day') }} as days_since_last_order
    from checked_snapshots as snapshots
    inner join completed_orders as orders
        on orders.ordered_at < snapshots.as_of_at
    group by snapshots.as_of_date, orders.customer_id

),

features as (

    select features.*
    from {{ ref('customer_features') }} as features
    inner join checked_snapshots
        on features.as_of_date = checked_snapshots.as_of_date

)

select
    features.customer_id,
    features.as_of_date,
    features.orders_lifetime,
    recounted.orders_lifetime as recounted_orders_lifetime,
    features.orders_30d,
    recounted.orders_30d as recounted_orders_30d,
    features.orders_365d,
    recounted.orders_365d as recounted_orders_365d,
    features.revenue_365d,
    recounted.revenue_365d as recounted_revenue_365d,
    features.days_since_last_order,
    recounted.days_since_last_order as recounted_days_since_last_order
from features
left join recounted
    on features.customer_id = recounted.customer_id
    and features.as_of_date = recounted.as_of_date
where features.orders_lifetime != coalesce(recounted.orders_lifetime, 0)
   or features.orders_30d != coalesce(recounted.orders_30d, 0)
   or features.orders_365d != coalesce(recounted.orders_365d, 0)
   or abs(features.revenue_365d - coalesce(recounted.revenue_365d, 0)) > 0.001
   or coalesce(features.days_since_last_order, -1) != coalesce(recounted.days_since_last_order, -1)
