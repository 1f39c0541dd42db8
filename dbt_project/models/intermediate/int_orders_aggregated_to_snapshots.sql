{#- Order features per (customer, as-of date), point in time: only orders before the
    as-of date (midnight) count.

    How: one stream per customer holding their snapshot rows and one row per day with
    orders, ordered by day number. At a snapshot on day D a window frame
    "RANGE BETWEEN n PRECEDING AND 1 PRECEDING" covers exactly the days [D - n, D - 1],
    i.e. orders in [as_of - n days, as_of); "UNBOUNDED PRECEDING AND 1 PRECEDING" covers
    the whole history before as_of. Every frame ends at 1 PRECEDING: an order on the
    as-of day itself never counts. This is linear in rows (no customer x snapshot x order
    join), whatever the history length or cadence.

    last_order_at / last_completed_order_at carry the latest order each row saw; the
    happens_before tests assert they are before as_of_date (leakage guard). -#}
{%- set active_window = days_var('churn_active_window_days') -%}

with spine as (

    select customer_id, as_of_date
    from {{ ref('int_customers_snapshotted') }}

),

orders as (

    select customer_id, ordered_at, revenue, discount, status
    from {{ ref('stg_shop__orders') }}
    where {{ before_event_cutoff('ordered_at') }}

),

order_days as (

    select
        customer_id,
        cast(ordered_at as date) as order_date,
        sum(case when status = 'completed' then 1 else 0 end) as completed_orders,
        sum(case when status = 'completed' then revenue else 0 end) as completed_revenue,
        sum(case when status = 'completed' then discount else 0 end) as completed_discount,
        count(*) as all_orders,
        sum(case when status = 'returned' then 1 else 0 end) as returned_orders,
        sum(case when status = 'cancelled' then 1 else 0 end) as cancelled_orders,
        max(case when status = 'completed' then ordered_at end) as last_completed_order_at,
        max(ordered_at) as last_order_at
    from orders
    group by customer_id, cast(ordered_at as date)

),

order_days_with_gaps as (

    -- purchase days are the days with a completed order; gap = days since the previous one
    select
        order_days.*,
        case when completed_orders > 0 then 1 else 0 end as is_purchase_day,
        case when completed_orders > 0 then
            {{ dbt.datediff(
                'lag(order_date) over (partition by customer_id, case when completed_orders > 0 then 1 else 0 end order by order_date)',
                'order_date', 'day') }}
        end as purchase_gap_days
    from order_days

),

stream as (

    select
        customer_id,
        {{ day_number('as_of_date') }} as day_number,
        as_of_date,
        cast(null as {{ dbt.type_int() }}) as completed_orders,
        cast(null as {{ type_double() }}) as completed_revenue,
        cast(null as {{ type_double() }}) as completed_discount,
        cast(null as {{ dbt.type_int() }}) as all_orders,
        cast(null as {{ dbt.type_int() }}) as returned_orders,
        cast(null as {{ dbt.type_int() }}) as cancelled_orders,
        cast(null as {{ dbt.type_int() }}) as is_purchase_day,
        cast(null as {{ dbt.type_int() }}) as purchase_gap_days,
        cast(null as {{ dbt.type_timestamp() }}) as last_completed_order_at,
        cast(null as {{ dbt.type_timestamp() }}) as last_order_at
    from spine

    union all

    select
        customer_id,
        {{ day_number('order_date') }} as day_number,
        cast(null as date) as as_of_date,
        completed_orders,
        completed_revenue,
        completed_discount,
        all_orders,
        returned_orders,
        cancelled_orders,
        is_purchase_day,
        purchase_gap_days,
        last_completed_order_at,
        last_order_at
    from order_days_with_gaps

),

aggregated as (

    select
        customer_id,
        as_of_date,
        day_number,

        sum(completed_orders) over last_30_days as orders_30d,
        sum(completed_orders) over last_90_days as orders_90d,
        sum(completed_orders) over last_180_days as orders_180d,
        sum(completed_orders) over last_365_days as orders_365d,
        sum(completed_orders) over prior_90_days as orders_prior_90d,
        sum(completed_orders) over active_window as orders_active_window,
        sum(completed_revenue) over last_30_days as revenue_30d,
        sum(completed_revenue) over last_90_days as revenue_90d,
        sum(completed_revenue) over last_180_days as revenue_180d,
        sum(completed_revenue) over last_365_days as revenue_365d,
        sum(completed_revenue) over prior_90_days as revenue_prior_90d,
        sum(completed_discount) over last_365_days as discount_365d,
        sum(all_orders) over last_365_days as all_orders_365d,
        sum(returned_orders) over last_365_days as returned_orders_365d,
        sum(cancelled_orders) over last_365_days as cancelled_orders_365d,

        sum(completed_orders) over lifetime as orders_lifetime,
        sum(completed_revenue) over lifetime as revenue_lifetime,
        sum(is_purchase_day) over lifetime as purchase_days_lifetime,
        min(case when is_purchase_day = 1 then day_number end) over lifetime as first_purchase_day_number,
        max(case when is_purchase_day = 1 then day_number end) over lifetime as last_purchase_day_number,
        sum(purchase_gap_days) over lifetime as purchase_gap_sum,
        sum(purchase_gap_days * purchase_gap_days) over lifetime as purchase_gap_sum_of_squares,
        last_value(purchase_gap_days ignore nulls) over lifetime as purchase_gap_last_days,
        max(last_completed_order_at) over lifetime as last_completed_order_at,
        max(last_order_at) over lifetime as last_order_at

    from stream
    window
        last_30_days as (partition by customer_id order by day_number range between 30 preceding and 1 preceding),
        last_90_days as (partition by customer_id order by day_number range between 90 preceding and 1 preceding),
        last_180_days as (partition by customer_id order by day_number range between 180 preceding and 1 preceding),
        last_365_days as (partition by customer_id order by day_number range between 365 preceding and 1 preceding),
        prior_90_days as (partition by customer_id order by day_number range between 180 preceding and 91 preceding),
        active_window as (partition by customer_id order by day_number range between {{ active_window }} preceding and 1 preceding),
        lifetime as (partition by customer_id order by day_number range between unbounded preceding and 1 preceding)

)

select
    customer_id,
    as_of_date,
    coalesce(orders_30d, 0) as orders_30d,
    coalesce(orders_90d, 0) as orders_90d,
    coalesce(orders_180d, 0) as orders_180d,
    coalesce(orders_365d, 0) as orders_365d,
    coalesce(orders_prior_90d, 0) as orders_prior_90d,
    coalesce(orders_active_window, 0) as orders_active_window,
    coalesce(revenue_30d, 0) as revenue_30d,
    coalesce(revenue_90d, 0) as revenue_90d,
    coalesce(revenue_180d, 0) as revenue_180d,
    coalesce(revenue_365d, 0) as revenue_365d,
    coalesce(revenue_prior_90d, 0) as revenue_prior_90d,
    coalesce(discount_365d, 0) as discount_365d,
    coalesce(all_orders_365d, 0) as all_orders_365d,
    coalesce(returned_orders_365d, 0) as returned_orders_365d,
    coalesce(cancelled_orders_365d, 0) as cancelled_orders_365d,
    coalesce(orders_lifetime, 0) as orders_lifetime,
    coalesce(revenue_lifetime, 0) as revenue_lifetime,
    -- BG/NBD inputs: repeat purchase days, recency and age in days (null before a first purchase)
    case when purchase_days_lifetime > 0 then purchase_days_lifetime - 1 end as bgnbd_x,
    last_purchase_day_number - first_purchase_day_number as bgnbd_t_x,
    day_number - first_purchase_day_number as bgnbd_T,
    day_number - last_purchase_day_number as days_since_last_order,
    -- inter-purchase gaps between distinct purchase days: mean and sample standard deviation
    {{ safe_divide('purchase_gap_sum', 'purchase_days_lifetime - 1') }} as purchase_gap_mean_days,
    case when purchase_days_lifetime >= 3 then
        sqrt(greatest(
            (purchase_gap_sum_of_squares
                - {{ safe_divide('purchase_gap_sum * purchase_gap_sum', 'purchase_days_lifetime - 1') }})
            / (purchase_days_lifetime - 2),
            0))
    end as purchase_gap_std_days,
    purchase_gap_last_days,
    last_completed_order_at,
    last_order_at
from aggregated
where as_of_date is not null
