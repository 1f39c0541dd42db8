{#- Order features per (customer, as-of date), point in time: only orders placed before
    the as-of date count.

    Each snapshot joins its customer's earlier orders (order day < as-of day, which for
    timestamps means ordered_at < as_of midnight) and aggregates them; trailing windows
    are conditions on the day: "last 30 days" = days [as_of - 30, as_of - 1]. Purchase
    rhythm (gaps, BG/NBD inputs) comes from distinct purchase days, joined the same way.
    Counts use count(case ...), money sums doubles: both much cheaper in DuckDB than
    integer sums.

    last_order_at / last_completed_order_at carry the latest order each row aggregated;
    the happens_before tests assert they are before as_of_date (leakage guard). -#}
{{ config(**incremental_snapshot_config()) }}
{%- set active_window = days_var('churn_active_window_days') -%}

with spine as (

    select
        customer_id,
        as_of_date,
        {{ day_number('as_of_date') }} as as_of_day
    from {{ ref('int_customers_snapshotted') }}
    where {{ snapshots_to_build('as_of_date') }}

),

fingerprints as (

    select * from {{ ref('int_snapshot_inputs_fingerprinted') }}

),

orders as (

    select
        customer_id,
        {{ day_number('cast(ordered_at as date)') }} as order_day,
        ordered_at,
        status,
        cast(revenue as {{ type_double() }}) as revenue,
        cast(discount as {{ type_double() }}) as discount
    from {{ ref('stg_shop__orders') }}
    where {{ before_event_cutoff('ordered_at') }}

),

purchase_days as (

    -- distinct days with a completed order, each with the customer's previous one
    select
        customer_id,
        order_day,
        lag(order_day) over (partition by customer_id order by order_day) as previous_purchase_day
    from (
        select distinct customer_id, order_day
        from orders
        where status = 'completed'
    ) as distinct_days

),

order_aggregates as (

    select
        spine.customer_id,
        spine.as_of_date,
        {%- for days in (30, 90, 180, 365) %}
        count(case when orders.status = 'completed' and orders.order_day >= spine.as_of_day - {{ days }}
            then 1 end) as orders_{{ days }}d,
        sum(case when orders.status = 'completed' and orders.order_day >= spine.as_of_day - {{ days }}
            then orders.revenue end) as revenue_{{ days }}d,
        {%- endfor %}
        count(case when orders.status = 'completed' and orders.order_day >= spine.as_of_day - 180
            and orders.order_day < spine.as_of_day - 90 then 1 end) as orders_prior_90d,
        sum(case when orders.status = 'completed' and orders.order_day >= spine.as_of_day - 180
            and orders.order_day < spine.as_of_day - 90 then orders.revenue end) as revenue_prior_90d,
        count(case when orders.status = 'completed' and orders.order_day >= spine.as_of_day - {{ active_window }}
            then 1 end) as orders_active_window,
        sum(case when orders.status = 'completed' and orders.order_day >= spine.as_of_day - 365
            then orders.discount end) as discount_365d,
        count(case when orders.order_day >= spine.as_of_day - 365 then 1 end) as all_orders_365d,
        count(case when orders.status = 'returned' and orders.order_day >= spine.as_of_day - 365
            then 1 end) as returned_orders_365d,
        count(case when orders.status = 'cancelled' and orders.order_day >= spine.as_of_day - 365
            then 1 end) as cancelled_orders_365d,
        count(case when orders.status = 'completed' then 1 end) as orders_lifetime,
        sum(case when orders.status = 'completed' then orders.revenue end) as revenue_lifetime,
        max(case when orders.status = 'completed' then orders.ordered_at end) as last_completed_order_at,
        max(orders.ordered_at) as last_order_at
    from spine
    left join orders
        on spine.customer_id = orders.customer_id
        and orders.order_day < spine.as_of_day
    group by spine.customer_id, spine.as_of_date

),

purchase_rhythm as (

    select
        spine.customer_id,
        spine.as_of_date,
        spine.as_of_day,
        count(purchase_days.order_day) as purchase_days,
        min(purchase_days.order_day) as first_purchase_day,
        max(purchase_days.order_day) as last_purchase_day,
        -- previous_purchase_day grows with the day, so its max belongs to the last purchase day
        max(purchase_days.previous_purchase_day) as second_last_purchase_day,
        sum(cast(purchase_days.order_day - purchase_days.previous_purchase_day as {{ type_double() }}))
            as gap_sum,
        sum(cast(purchase_days.order_day - purchase_days.previous_purchase_day as {{ type_double() }})
            * (purchase_days.order_day - purchase_days.previous_purchase_day)) as gap_sum_of_squares
    from spine
    left join purchase_days
        on spine.customer_id = purchase_days.customer_id
        and purchase_days.order_day < spine.as_of_day
    group by spine.customer_id, spine.as_of_date, spine.as_of_day

)

select
    order_aggregates.customer_id,
    order_aggregates.as_of_date,
    {%- for days in (30, 90, 180, 365) %}
    order_aggregates.orders_{{ days }}d,
    coalesce(order_aggregates.revenue_{{ days }}d, 0) as revenue_{{ days }}d,
    {%- endfor %}
    order_aggregates.orders_prior_90d,
    coalesce(order_aggregates.revenue_prior_90d, 0) as revenue_prior_90d,
    order_aggregates.orders_active_window,
    coalesce(order_aggregates.discount_365d, 0) as discount_365d,
    order_aggregates.all_orders_365d,
    order_aggregates.returned_orders_365d,
    order_aggregates.cancelled_orders_365d,
    order_aggregates.orders_lifetime,
    coalesce(order_aggregates.revenue_lifetime, 0) as revenue_lifetime,
    rhythm.as_of_day - rhythm.last_purchase_day as days_since_last_order,
    -- BG/NBD inputs in days (null before a first purchase): repeat purchase days,
    -- first-to-last purchase, first purchase to as-of
    case when rhythm.purchase_days > 0 then rhythm.purchase_days - 1 end as bgnbd_x,
    rhythm.last_purchase_day - rhythm.first_purchase_day as bgnbd_t_x,
    rhythm.as_of_day - rhythm.first_purchase_day as bgnbd_T,
    -- gaps between consecutive distinct purchase days: mean, sample standard deviation, last
    {{ safe_divide('rhythm.gap_sum', 'rhythm.purchase_days - 1') }} as purchase_gap_mean_days,
    case when rhythm.purchase_days >= 3 then
        sqrt(greatest(
            (rhythm.gap_sum_of_squares - rhythm.gap_sum * rhythm.gap_sum / (rhythm.purchase_days - 1))
            / (rhythm.purchase_days - 2),
            0))
    end as purchase_gap_std_days,
    rhythm.last_purchase_day - rhythm.second_last_purchase_day as purchase_gap_last_days,
    order_aggregates.last_completed_order_at,
    order_aggregates.last_order_at,
    {{ snapshot_fingerprint('fingerprints') }} as snapshot_fingerprint
from order_aggregates
inner join purchase_rhythm as rhythm
    on order_aggregates.customer_id = rhythm.customer_id
    and order_aggregates.as_of_date = rhythm.as_of_date
left join fingerprints
    on order_aggregates.as_of_date = fingerprints.as_of_date
