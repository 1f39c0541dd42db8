{#- Engagement features per (customer, as-of date) from sessions started before the as-of
    date: counts over the trailing 30 and 90 days and the latest session ever.
    Same stream technique as int_orders_aggregated_to_snapshots (frames end at 1 PRECEDING). -#}

with spine as (

    select customer_id, as_of_date
    from {{ ref('int_customers_snapshotted') }}

),

session_days as (

    select
        customer_id,
        {{ day_number('cast(started_at as date)') }} as day_number,
        count(*) as sessions,
        sum(page_views) as page_views,
        sum(cart_adds) as cart_adds,
        max(started_at) as last_session_at
    from {{ ref('stg_shop__sessions') }}
    where customer_id is not null
      and {{ before_event_cutoff('started_at') }}
    group by customer_id, cast(started_at as date)

),

stream as (

    select
        customer_id,
        {{ day_number('as_of_date') }} as day_number,
        as_of_date,
        cast(null as {{ dbt.type_int() }}) as sessions,
        cast(null as {{ dbt.type_int() }}) as page_views,
        cast(null as {{ dbt.type_int() }}) as cart_adds,
        cast(null as {{ dbt.type_timestamp() }}) as last_session_at
    from spine

    union all

    select customer_id, day_number, cast(null as date), sessions, page_views, cart_adds, last_session_at
    from session_days

),

aggregated as (

    select
        customer_id,
        as_of_date,
        day_number,
        sum(sessions) over last_30_days as sessions_30d,
        sum(sessions) over last_90_days as sessions_90d,
        sum(page_views) over last_30_days as page_views_30d,
        sum(page_views) over last_90_days as page_views_90d,
        sum(cart_adds) over last_30_days as cart_adds_30d,
        sum(cart_adds) over last_90_days as cart_adds_90d,
        max(case when sessions > 0 then day_number end) over lifetime as last_session_day_number,
        max(last_session_at) over lifetime as last_session_at
    from stream
    window
        last_30_days as (partition by customer_id order by day_number range between 30 preceding and 1 preceding),
        last_90_days as (partition by customer_id order by day_number range between 90 preceding and 1 preceding),
        lifetime as (partition by customer_id order by day_number range between unbounded preceding and 1 preceding)

)

select
    customer_id,
    as_of_date,
    coalesce(sessions_30d, 0) as sessions_30d,
    coalesce(sessions_90d, 0) as sessions_90d,
    coalesce(page_views_30d, 0) as page_views_30d,
    coalesce(page_views_90d, 0) as page_views_90d,
    coalesce(cart_adds_30d, 0) as cart_adds_30d,
    coalesce(cart_adds_90d, 0) as cart_adds_90d,
    day_number - last_session_day_number as days_since_last_session,
    last_session_at
from aggregated
where as_of_date is not null
