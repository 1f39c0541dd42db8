{#- Engagement features per (customer, as-of date) from sessions started before the as-of
    date: counts over the trailing 30 and 90 days and the latest session ever. Sessions
    are rolled up per customer and day first; each snapshot joins its customer's earlier
    days (same technique as int_orders_aggregated_to_snapshots). -#}

with spine as (

    select
        customer_id,
        as_of_date,
        {{ day_number('as_of_date') }} as as_of_day
    from {{ ref('int_customers_snapshotted') }}

),

sessions as (

    select
        customer_id,
        {{ day_number('cast(started_at as date)') }} as session_day,
        started_at,
        page_views,
        cart_adds
    from {{ ref('stg_shop__sessions') }}
    where customer_id is not null
      and {{ before_event_cutoff('started_at') }}

),

session_days as (

    select
        customer_id,
        session_day,
        count(*) as sessions,
        sum(page_views) as page_views,
        sum(cart_adds) as cart_adds,
        max(started_at) as last_session_at
    from sessions
    group by customer_id, session_day

),

aggregated as (

    select
        spine.customer_id,
        spine.as_of_date,
        spine.as_of_day,
        {%- for days in (30, 90) %}
        sum(case when days.session_day >= spine.as_of_day - {{ days }} then days.sessions else 0 end) as sessions_{{ days }}d,
        sum(case when days.session_day >= spine.as_of_day - {{ days }} then days.page_views else 0 end) as page_views_{{ days }}d,
        sum(case when days.session_day >= spine.as_of_day - {{ days }} then days.cart_adds else 0 end) as cart_adds_{{ days }}d,
        {%- endfor %}
        max(days.session_day) as last_session_day,
        max(days.last_session_at) as last_session_at
    from spine
    left join session_days as days
        on spine.customer_id = days.customer_id
        and days.session_day < spine.as_of_day
    group by spine.customer_id, spine.as_of_date, spine.as_of_day

)

select
    customer_id,
    as_of_date,
    sessions_30d,
    sessions_90d,
    page_views_30d,
    page_views_90d,
    cart_adds_30d,
    cart_adds_90d,
    as_of_day - last_session_day as days_since_last_session,
    last_session_at
from aggregated
