{#- One row per clicked marketing touch whose 7-day window has been fully observed.
    Label: revenue of completed orders in [clicked_at, clicked_at + 7 days) for which this
    click is the customer's last click before the order (last click wins).
    Features: the click's channel and campaign plus the customer's point-in-time features at
    the start of the click's period (the snapshot on or before the click), so no feature
    sees an event at or after the click. -#}
{%- set window_days = days_var('click_attribution_days') | int -%}

with calendar as (

    select max(data_end) as data_end
    from {{ ref('snapshot_calendar') }}

),

clicks as (

    select
        touch_id,
        customer_id,
        touched_at as clicked_at,
        channel,
        campaign,
        {{ period_start(snapshot_cadence(), 'touched_at') }} as as_of_date
    from {{ ref('stg_shop__marketing_touches') }}
    where clicked
      and {{ before_event_cutoff('touched_at') }}

),

completed_orders as (

    select order_id, customer_id, ordered_at, revenue
    from {{ ref('stg_shop__orders') }}
    where status = 'completed'
      and {{ before_event_cutoff('ordered_at') }}

),

attributed as (

    select
        completed_orders.order_id,
        completed_orders.revenue,
        clicks.touch_id,
        row_number() over (
            partition by completed_orders.order_id
            order by clicks.clicked_at desc, clicks.touch_id desc
        ) as click_rank
    from completed_orders
    inner join clicks
        on clicks.customer_id = completed_orders.customer_id
        and completed_orders.ordered_at >= clicks.clicked_at
        and completed_orders.ordered_at < {{ add_days_to_timestamp(window_days, 'clicks.clicked_at') }}

),

click_revenue as (

    {#- summed as numeric: a float sum depends on the order rows arrive in, so a rebuild
        could differ in the last bit -#}
    select touch_id, sum(cast(revenue as {{ dbt.type_numeric() }})) as revenue
    from attributed
    where click_rank = 1
    group by touch_id

)

select
    clicks.touch_id,
    clicks.customer_id,
    clicks.as_of_date,
    clicks.clicked_at,
    clicks.channel,
    clicks.campaign,
    {{ customer_feature_columns('features') }},
    cast(coalesce(click_revenue.revenue, 0) as {{ type_double() }}) as label,
    {{ add_days(window_days + 1, 'clicks.clicked_at') }} as label_matured_on
from clicks
inner join {{ ref('customer_features') }} as features
    on features.customer_id = clicks.customer_id
    and features.as_of_date = clicks.as_of_date
left join click_revenue
    on click_revenue.touch_id = clicks.touch_id
cross join calendar
where {{ add_days(window_days + 1, 'clicks.clicked_at') }} <= calendar.data_end
