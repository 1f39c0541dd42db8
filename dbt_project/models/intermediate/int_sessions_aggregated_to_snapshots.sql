{#- Engagement features per (customer, as-of date) from sessions started before the as-of
    date: counts over the trailing 30 and 90 days, the latest session ever and the count of
    all sessions so far. Each snapshot joins its customer's sessions of the 90 days before
    it (same technique as int_orders_aggregated_to_snapshots), and the one session that is
    its customer's last before the as-of day (an interval lookup: no aggregation over the
    whole history), which carries the running count of the customer's sessions. -#}
{{ config(**incremental_snapshot_config()) }}

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

sessions as (

    select
        customer_id,
        session_id,
        {{ day_number('cast(started_at as date)') }} as session_day,
        started_at,
        cast(page_views as {{ type_double() }}) as page_views,
        cast(cart_adds as {{ type_double() }}) as cart_adds
    from {{ ref('stg_shop__sessions') }}
    where customer_id is not null
      and {{ before_event_cutoff('started_at') }}

),

last_90_days as (

    select
        spine.customer_id,
        spine.as_of_date,
        {%- for days in (30, 90) %}
        count(case when sessions.session_day >= spine.as_of_day - {{ days }} then 1 end) as sessions_{{ days }}d,
        sum(case when sessions.session_day >= spine.as_of_day - {{ days }} then sessions.page_views end)
            as page_views_{{ days }}d,
        sum(case when sessions.session_day >= spine.as_of_day - {{ days }} then sessions.cart_adds end)
            as cart_adds_{{ days }}d{{ "," if not loop.last }}
        {%- endfor %}
    from spine
    left join sessions
        on spine.customer_id = sessions.customer_id
        and sessions.session_day < spine.as_of_day
        and sessions.session_day >= spine.as_of_day - 90
    group by spine.customer_id, spine.as_of_date

),

session_sequence as (

    -- each session with the day of the customer's next session and their sessions so far
    select
        customer_id,
        session_day,
        started_at,
        lead(session_day) over (partition by customer_id order by started_at, session_id) as next_session_day,
        row_number() over (partition by customer_id order by started_at, session_id) as sessions_so_far
    from sessions

),

latest as (

    -- the last session before the as-of day is the one whose next session is on or after it
    select
        spine.customer_id,
        spine.as_of_date,
        spine.as_of_day - session_sequence.session_day as days_since_last_session,
        session_sequence.started_at as last_session_at,
        session_sequence.sessions_so_far as sessions_lifetime
    from spine
    left join session_sequence
        on spine.customer_id = session_sequence.customer_id
        and session_sequence.session_day < spine.as_of_day
        and (session_sequence.next_session_day >= spine.as_of_day or session_sequence.next_session_day is null)

)

select
    last_90_days.customer_id,
    last_90_days.as_of_date,
    last_90_days.sessions_30d,
    last_90_days.sessions_90d,
    cast(coalesce(last_90_days.page_views_30d, 0) as {{ dbt.type_int() }}) as page_views_30d,
    cast(coalesce(last_90_days.page_views_90d, 0) as {{ dbt.type_int() }}) as page_views_90d,
    cast(coalesce(last_90_days.cart_adds_30d, 0) as {{ dbt.type_int() }}) as cart_adds_30d,
    cast(coalesce(last_90_days.cart_adds_90d, 0) as {{ dbt.type_int() }}) as cart_adds_90d,
    latest.days_since_last_session,
    latest.last_session_at,
    cast(coalesce(latest.sessions_lifetime, 0) as {{ dbt.type_int() }}) as sessions_lifetime,
    {{ snapshot_fingerprint('fingerprints') }} as snapshot_fingerprint
from last_90_days
inner join latest
    on last_90_days.customer_id = latest.customer_id
    and last_90_days.as_of_date = latest.as_of_date
left join fingerprints
    on last_90_days.as_of_date = fingerprints.as_of_date
