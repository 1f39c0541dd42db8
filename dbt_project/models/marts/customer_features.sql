{#- One row per (customer_id, as_of_date): point-in-time features (only events before
    as_of_date). Features of an optional raw table that is absent are null, not zero:
    "no data" must not read as "no activity". -#}
{%- set has_customers = source_exists('customers') -%}
{%- set has_order_items = source_exists('order_items') -%}
{%- set has_sessions = source_exists('sessions') -%}
{%- set has_touches = source_exists('marketing_touches') -%}
{%- set channels = ['sem', 'seo', 'crm', 'display'] -%}
{#- Days the customer has been known, at least 30: the denominator of per-year rates, so a
    brand-new customer's first order does not read as a rate of hundreds a year. -#}
{%- set known_days = 'greatest(' ~ dbt.datediff('cast(spine.known_since_at as date)', 'spine.as_of_date', 'day') ~ ', 30)' -%}

with spine as (

    select * from {{ ref('int_customers_snapshotted') }}

),

orders as (

    select * from {{ ref('int_orders_aggregated_to_snapshots') }}

),

order_items as (

    select * from {{ ref('int_order_items_aggregated_to_snapshots') }}

),

sessions as (

    select * from {{ ref('int_sessions_aggregated_to_snapshots') }}

),

touches as (

    select * from {{ ref('int_marketing_touches_aggregated_to_snapshots') }}

)

select
    spine.customer_id,
    spine.as_of_date,

    -- populations
    coalesce(orders.orders_active_window, 0) > 0 as in_churn_population,
    true as in_propensity_population,

    -- customer attributes
    {{ optional_value(has_customers, 'spine.region', dbt.type_string()) }} as region,
    {{ optional_value(has_customers, 'spine.acquisition_channel', dbt.type_string()) }} as acquisition_channel,
    cast({{ dbt.datediff('cast(spine.known_since_at as date)', 'spine.as_of_date', 'day') }} as {{ dbt.type_int() }})
        as tenure_days,

    -- recency, frequency, monetary (completed orders)
    cast(orders.days_since_last_order as {{ dbt.type_int() }}) as days_since_last_order,
    cast(coalesce(orders.orders_30d, 0) as {{ dbt.type_int() }}) as orders_30d,
    cast(coalesce(orders.orders_90d, 0) as {{ dbt.type_int() }}) as orders_90d,
    cast(coalesce(orders.orders_180d, 0) as {{ dbt.type_int() }}) as orders_180d,
    cast(coalesce(orders.orders_365d, 0) as {{ dbt.type_int() }}) as orders_365d,
    cast(coalesce(orders.revenue_30d, 0) as {{ type_double() }}) as revenue_30d,
    cast(coalesce(orders.revenue_90d, 0) as {{ type_double() }}) as revenue_90d,
    cast(coalesce(orders.revenue_180d, 0) as {{ type_double() }}) as revenue_180d,
    cast(coalesce(orders.revenue_365d, 0) as {{ type_double() }}) as revenue_365d,
    cast(coalesce(orders.orders_lifetime, 0) as {{ dbt.type_int() }}) as orders_lifetime,
    cast(coalesce(orders.revenue_lifetime, 0) as {{ type_double() }}) as revenue_lifetime,
    {{ safe_divide('orders.revenue_lifetime', 'orders.orders_lifetime') }} as avg_order_value,

    -- purchase rhythm
    cast(orders.purchase_gap_mean_days as {{ type_double() }}) as purchase_gap_mean_days,
    cast(orders.purchase_gap_std_days as {{ type_double() }}) as purchase_gap_std_days,
    cast(orders.purchase_gap_last_days as {{ dbt.type_int() }}) as purchase_gap_last_days,
    {{ safe_divide('orders.orders_90d', 'orders.orders_prior_90d') }} as orders_trend_90d,
    {{ safe_divide('orders.revenue_90d', 'orders.revenue_prior_90d') }} as revenue_trend_90d,
    -- the customer's own purchase rate, and how overdue the next purchase is against their
    -- usual gap (a silent dropout shows as a recency far beyond the rhythm)
    {{ safe_divide('365 * coalesce(orders.orders_lifetime, 0)', known_days) }} as orders_per_year,
    {{ safe_divide('orders.days_since_last_order', 'orders.purchase_gap_mean_days') }} as recency_ratio,

    -- price sensitivity and order outcomes over the trailing 365 days
    {{ safe_divide('orders.discount_365d', 'orders.revenue_365d + orders.discount_365d') }} as discount_share,
    {{ safe_divide('orders.returned_orders_365d', 'orders.all_orders_365d') }} as return_rate,
    {{ safe_divide('orders.cancelled_orders_365d', 'orders.all_orders_365d') }} as cancel_rate,

    -- baskets (order_items)
    {{ optional_count(has_order_items, 'order_items.distinct_categories_365d') }} as distinct_categories_365d,
    {{ optional_value(has_order_items, safe_divide('order_items.units_365d', 'orders.orders_365d'), type_double()) }}
        as items_per_order,

    -- engagement (sessions)
    {{ optional_count(has_sessions, 'sessions.sessions_30d') }} as sessions_30d,
    {{ optional_count(has_sessions, 'sessions.sessions_90d') }} as sessions_90d,
    {{ optional_count(has_sessions, 'sessions.page_views_30d') }} as page_views_30d,
    {{ optional_count(has_sessions, 'sessions.page_views_90d') }} as page_views_90d,
    {{ optional_count(has_sessions, 'sessions.cart_adds_30d') }} as cart_adds_30d,
    {{ optional_count(has_sessions, 'sessions.cart_adds_90d') }} as cart_adds_90d,
    {{ optional_value(has_sessions, 'sessions.days_since_last_session', dbt.type_int()) }} as days_since_last_session,
    -- visits per year since the customer was known, and the last 90 days' visit rate against
    -- it (after a silent dropout, visits fall to a trickle)
    {{ optional_value(has_sessions, safe_divide('365 * sessions.sessions_lifetime', known_days), type_double()) }}
        as sessions_per_year,
    {{ optional_value(has_sessions, safe_divide('sessions.sessions_90d * ' ~ known_days, '90 * sessions.sessions_lifetime'), type_double()) }}
        as session_rate_ratio_90d,
    -- visits the customer's usual rate would have made since their last one: a long silence
    -- from a frequent visitor is the clearest trace of a dropout
    {{ optional_value(has_sessions, safe_divide('sessions.sessions_lifetime * sessions.days_since_last_session', known_days), type_double()) }}
        as expected_sessions_since_last_session,

    -- marketing (marketing_touches)
    {{ optional_count(has_touches, 'touches.touches_90d') }} as touches_90d,
    {%- for channel in channels %}
    {{ optional_count(has_touches, 'touches.touches_90d_' ~ channel) }} as touches_90d_{{ channel }},
    {%- endfor %}
    {{ optional_count(has_touches, 'touches.clicks_90d') }} as clicks_90d,
    {%- for channel in channels %}
    {{ optional_count(has_touches, 'touches.clicks_90d_' ~ channel) }} as clicks_90d_{{ channel }},
    {%- endfor %}
    {{ optional_value(has_touches, 'touches.days_since_last_click', dbt.type_int()) }} as days_since_last_click,
    {{ optional_value(has_touches, 'touches.last_touch_channel', dbt.type_string()) }} as last_touch_channel,

    -- BG/NBD inputs in days (null before the first completed purchase)
    cast(orders.bgnbd_x as {{ dbt.type_int() }}) as bgnbd_x,
    cast(orders.bgnbd_t_x as {{ dbt.type_int() }}) as bgnbd_t_x,
    cast(orders.bgnbd_T as {{ dbt.type_int() }}) as bgnbd_T

from spine
left join orders
    on spine.customer_id = orders.customer_id and spine.as_of_date = orders.as_of_date
left join order_items
    on spine.customer_id = order_items.customer_id and spine.as_of_date = order_items.as_of_date
left join sessions
    on spine.customer_id = sessions.customer_id and spine.as_of_date = sessions.as_of_date
left join touches
    on spine.customer_id = touches.customer_id and spine.as_of_date = touches.as_of_date
