{#- Marketing features per (customer, as-of date) from touches before the as-of date:
    touches and clicks per channel over the trailing 90 days, the latest click and the
    channel of the latest touch ever. Each snapshot joins its customer's touches of the
    90 days before it (same technique as int_orders_aggregated_to_snapshots), and the one
    touch that is its customer's last before the as-of day (an interval lookup: no
    aggregation over the whole history). -#}
{{ config(**incremental_snapshot_config()) }}
{%- set channels = ['SEM', 'SEO', 'CRM', 'Display'] -%}

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

touches as (

    select
        customer_id,
        {{ day_number('cast(touched_at as date)') }} as touch_day,
        touched_at,
        touch_id,
        channel,
        lower(channel) as channel_key,
        coalesce(clicked, false) as clicked
    from {{ ref('stg_shop__marketing_touches') }}
    where customer_id is not null
      and {{ before_event_cutoff('touched_at') }}

),

last_90_days as (

    select
        spine.customer_id,
        spine.as_of_date,
        count(touches.touch_day) as touches_90d,
        count(case when touches.clicked then 1 end) as clicks_90d,
        {%- for channel in channels %}
        count(case when touches.channel_key = '{{ channel | lower }}' then 1 end) as touches_90d_{{ channel | lower }},
        count(case when touches.channel_key = '{{ channel | lower }}' and touches.clicked then 1 end)
            as clicks_90d_{{ channel | lower }}{{ "," if not loop.last }}
        {%- endfor %}
    from spine
    left join touches
        on spine.customer_id = touches.customer_id
        and touches.touch_day < spine.as_of_day
        and touches.touch_day >= spine.as_of_day - 90
    group by spine.customer_id, spine.as_of_date

),

touch_sequence as (

    -- each touch with the day of the customer's next touch and their latest click so far
    -- (ties on touched_at are ordered by channel, then touch_id)
    select
        customer_id,
        touch_day,
        touched_at,
        channel,
        lead(touch_day) over (
            partition by customer_id order by touched_at, channel, touch_id
        ) as next_touch_day,
        max(case when clicked then touch_day end) over (
            partition by customer_id order by touched_at, channel, touch_id
            rows between unbounded preceding and current row
        ) as last_click_day
    from touches

),

latest as (

    -- the last touch before the as-of day is the one whose next touch is on or after it
    select
        spine.customer_id,
        spine.as_of_date,
        spine.as_of_day - touch_sequence.last_click_day as days_since_last_click,
        touch_sequence.channel as last_touch_channel,
        touch_sequence.touched_at as last_touch_at
    from spine
    left join touch_sequence
        on spine.customer_id = touch_sequence.customer_id
        and touch_sequence.touch_day < spine.as_of_day
        and (touch_sequence.next_touch_day >= spine.as_of_day or touch_sequence.next_touch_day is null)

)

select
    last_90_days.*,
    latest.days_since_last_click,
    latest.last_touch_channel,
    latest.last_touch_at,
    {{ snapshot_fingerprint('fingerprints') }} as snapshot_fingerprint
from last_90_days
inner join latest
    on last_90_days.customer_id = latest.customer_id
    and last_90_days.as_of_date = latest.as_of_date
left join fingerprints
    on last_90_days.as_of_date = fingerprints.as_of_date
