{#- One row per as-of date: a fingerprint of every staged event its point-in-time features
    can read (orders, their lines, sessions, marketing touches, and the customers known)
    with a timestamp before the as-of date. The incremental snapshot models rebuild a
    snapshot when its fingerprint changes (macros/incremental_snapshots.sql). Events are
    rolled up per day first, so each snapshot sums a few thousand daily rows. -#}

with events as (

    select
        cast(ordered_at as date) as event_date,
        {{ row_fingerprint(['order_id', 'customer_id', 'ordered_at', 'revenue', 'discount',
                            'status', 'order_channel']) }} as fingerprint
    from {{ ref('stg_shop__orders') }}

    union all

    select
        cast(orders.ordered_at as date) as event_date,
        {{ row_fingerprint(['order_items.order_id', 'order_items.line_number',
                            'order_items.product_id', 'order_items.category',
                            'order_items.quantity', 'order_items.unit_price']) }} as fingerprint
    from {{ ref('stg_shop__order_items') }} as order_items
    inner join {{ ref('stg_shop__orders') }} as orders
        on order_items.order_id = orders.order_id

    union all

    select
        cast(started_at as date) as event_date,
        {{ row_fingerprint(['session_id', 'customer_id', 'started_at', 'traffic_source',
                            'page_views', 'cart_adds']) }} as fingerprint
    from {{ ref('stg_shop__sessions') }}

    union all

    select
        cast(touched_at as date) as event_date,
        {{ row_fingerprint(['touch_id', 'customer_id', 'touched_at', 'channel', 'campaign',
                            'cost', 'clicked']) }} as fingerprint
    from {{ ref('stg_shop__marketing_touches') }}

    union all

    -- a customer enters the spine (with their attributes) once known
    select
        cast(known_since_at as date) as event_date,
        {{ row_fingerprint(['customer_id', 'known_since_at', 'region',
                            'acquisition_channel']) }} as fingerprint
    from {{ ref('int_customers_combined') }}

),

daily as (

    select
        event_date,
        count(*) as events,
        sum(fingerprint) as fingerprint_sum
    from events
    where event_date is not null
    group by event_date

),

before_each_snapshot as (

    select
        calendar.as_of_date,
        sum(daily.events) as events_before,
        sum(daily.fingerprint_sum) as events_fingerprint
    from {{ ref('int_snapshot_dates_generated') }} as calendar
    inner join daily
        on daily.event_date < calendar.as_of_date
    group by calendar.as_of_date

)

select
    calendar.as_of_date,
    cast(coalesce(before_each_snapshot.events_before, 0) as {{ dbt.type_bigint() }}) as events_before,
    cast(coalesce(before_each_snapshot.events_fingerprint, 0) as {{ dbt.type_bigint() }})
        as events_fingerprint
from {{ ref('int_snapshot_dates_generated') }} as calendar
left join before_each_snapshot
    on calendar.as_of_date = before_each_snapshot.as_of_date
