{#- Order features per (customer, as-of date), point in time: only orders placed before
    the as-of date (midnight) count.

    Orders are first rolled up to one row per customer and day; each snapshot then joins
    its customer's earlier order days (day < as_of_date, which for timestamps means
    ordered_at < as_of midnight) and aggregates them, trailing windows with conditions on
    the day: "last 30 days" = days in [as_of - 30, as_of - 1].

    last_order_at / last_completed_order_at carry the latest order each row aggregated;
    the happens_before tests assert they are before as_of_date (leakage guard). -#}
{%- set active_window = days_var('churn_active_window_days') -%}

with spine as (

    select
        customer_id,
        as_of_date,
        {{ day_number('as_of_date') }} as as_of_day
    from {{ ref('int_customers_snapshotted') }}

),

orders as (

    select
        customer_id,
        {{ day_number('cast(ordered_at as date)') }} as order_day,
        ordered_at,
        revenue,
        discount,
        status
    from {{ ref('stg_shop__orders') }}
    where {{ before_event_cutoff('ordered_at') }}

),

order_days as (

    select
        customer_id,
        order_day,
        sum(case when status = 'completed' then 1 else 0 end) as completed_orders,
        sum(case when status = 'completed' then revenue else 0 end) as completed_revenue,
        sum(case when status = 'completed' then discount else 0 end) as completed_discount,
        count(*) as all_orders,
        sum(case when status = 'returned' then 1 else 0 end) as returned_orders,
        sum(case when status = 'cancelled' then 1 else 0 end) as cancelled_orders,
        max(case when status = 'completed' then ordered_at end) as last_completed_order_at,
        max(ordered_at) as last_order_at
    from orders
    group by customer_id, order_day

),

purchase_days as (

    -- days with a completed order, each with the previous such day of the customer
    select
        customer_id,
        order_day,
        lag(order_day) over (partition by customer_id order by order_day) as previous_purchase_day
    from order_days
    where completed_orders > 0

),

order_days_with_gaps as (

    select
        order_days.*,
        case when order_days.completed_orders > 0 then 1 else 0 end as is_purchase_day,
        purchase_days.previous_purchase_day,
        order_days.order_day - purchase_days.previous_purchase_day as purchase_gap_days
    from order_days
    left join purchase_days
        on order_days.customer_id = purchase_days.customer_id
        and order_days.order_day = purchase_days.order_day

),

aggregated as (

    select
        spine.customer_id,
        spine.as_of_date,
        spine.as_of_day,
        {%- for days in (30, 90, 180, 365) %}
        sum(case when days.order_day >= spine.as_of_day - {{ days }} then days.completed_orders else 0 end) as orders_{{ days }}d,
        sum(case when days.order_day >= spine.as_of_day - {{ days }} then days.completed_revenue else 0 end) as revenue_{{ days }}d,
        {%- endfor %}
        sum(case when days.order_day >= spine.as_of_day - 180 and days.order_day < spine.as_of_day - 90
            then days.completed_orders else 0 end) as orders_prior_90d,
        sum(case when days.order_day >= spine.as_of_day - 180 and days.order_day < spine.as_of_day - 90
            then days.completed_revenue else 0 end) as revenue_prior_90d,
        sum(case when days.order_day >= spine.as_of_day - {{ active_window }}
            then days.completed_orders else 0 end) as orders_active_window,
        sum(case when days.order_day >= spine.as_of_day - 365 then days.completed_discount else 0 end) as discount_365d,
        sum(case when days.order_day >= spine.as_of_day - 365 then days.all_orders else 0 end) as all_orders_365d,
        sum(case when days.order_day >= spine.as_of_day - 365 then days.returned_orders else 0 end) as returned_orders_365d,
        sum(case when days.order_day >= spine.as_of_day - 365 then days.cancelled_orders else 0 end) as cancelled_orders_365d,

        sum(days.completed_orders) as orders_lifetime,
        sum(days.completed_revenue) as revenue_lifetime,
        sum(days.is_purchase_day) as purchase_days_lifetime,
        min(case when days.is_purchase_day = 1 then days.order_day end) as first_purchase_day,
        max(case when days.is_purchase_day = 1 then days.order_day end) as last_purchase_day,
        -- previous_purchase_day grows with the day, so its max belongs to the last purchase day
        max(days.previous_purchase_day) as second_last_purchase_day,
        sum(days.purchase_gap_days) as purchase_gap_sum,
        sum(cast(days.purchase_gap_days as {{ type_double() }}) * days.purchase_gap_days) as purchase_gap_sum_of_squares,
        max(days.last_completed_order_at) as last_completed_order_at,
        max(days.last_order_at) as last_order_at
    from spine
    left join order_days_with_gaps as days
        on spine.customer_id = days.customer_id
        and days.order_day < spine.as_of_day
    group by spine.customer_id, spine.as_of_date, spine.as_of_day

)

select
    customer_id,
    as_of_date,
    {%- for days in (30, 90, 180, 365) %}
    coalesce(orders_{{ days }}d, 0) as orders_{{ days }}d,
    coalesce(revenue_{{ days }}d, 0) as revenue_{{ days }}d,
    {%- endfor %}
    coalesce(orders_prior_90d, 0) as orders_prior_90d,
    coalesce(revenue_prior_90d, 0) as revenue_prior_90d,
    coalesce(orders_active_window, 0) as orders_active_window,
    coalesce(discount_365d, 0) as discount_365d,
    coalesce(all_orders_365d, 0) as all_orders_365d,
    coalesce(returned_orders_365d, 0) as returned_orders_365d,
    coalesce(cancelled_orders_365d, 0) as cancelled_orders_365d,
    coalesce(orders_lifetime, 0) as orders_lifetime,
    coalesce(revenue_lifetime, 0) as revenue_lifetime,
    as_of_day - last_purchase_day as days_since_last_order,
    -- BG/NBD inputs in days (null before a first purchase): repeat purchase days,
    -- first-to-last purchase, first purchase to as-of
    case when purchase_days_lifetime > 0 then purchase_days_lifetime - 1 end as bgnbd_x,
    last_purchase_day - first_purchase_day as bgnbd_t_x,
    as_of_day - first_purchase_day as bgnbd_T,
    -- gaps between consecutive distinct purchase days: mean, sample standard deviation, last
    {{ safe_divide('purchase_gap_sum', 'purchase_days_lifetime - 1') }} as purchase_gap_mean_days,
    case when purchase_days_lifetime >= 3 then
        sqrt(greatest(
            (purchase_gap_sum_of_squares
                - {{ safe_divide('purchase_gap_sum * purchase_gap_sum', 'purchase_days_lifetime - 1') }})
            / (purchase_days_lifetime - 2),
            0))
    end as purchase_gap_std_days,
    last_purchase_day - second_last_purchase_day as purchase_gap_last_days,
    last_completed_order_at,
    last_order_at
from aggregated
