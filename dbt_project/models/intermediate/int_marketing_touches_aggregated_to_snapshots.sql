{#- Marketing features per (customer, as-of date) from touches before the as-of date:
    touches and clicks per channel over the trailing 90 days, the latest click and the
    channel of the latest touch ever. Each snapshot joins its customer's earlier touches
    (same technique as int_orders_aggregated_to_snapshots); touches are joined as they
    are, not rolled up per day first, which is faster here (few touches share a day). -#}
{%- set channels = ['SEM', 'SEO', 'CRM', 'Display'] -%}

with spine as (

    select
        customer_id,
        as_of_date,
        {{ day_number('as_of_date') }} as as_of_day
    from {{ ref('int_customers_snapshotted') }}

),

touches as (

    select
        customer_id,
        {{ day_number('cast(touched_at as date)') }} as touch_day,
        touched_at,
        channel,
        lower(channel) as channel_key,
        case when clicked then 1 else 0 end as is_click
    from {{ ref('stg_shop__marketing_touches') }}
    where customer_id is not null
      and {{ before_event_cutoff('touched_at') }}

),

last_90_days as (

    select
        spine.customer_id,
        spine.as_of_date,
        count(touches.touch_day) as touches_90d,
        coalesce(sum(touches.is_click), 0) as clicks_90d,
        {%- for channel in channels %}
        sum(case when touches.channel_key = '{{ channel | lower }}' then 1 else 0 end) as touches_90d_{{ channel | lower }},
        sum(case when touches.channel_key = '{{ channel | lower }}' then touches.is_click else 0 end) as clicks_90d_{{ channel | lower }}{{ "," if not loop.last }}
        {%- endfor %}
    from spine
    left join touches
        on spine.customer_id = touches.customer_id
        and touches.touch_day < spine.as_of_day
        and touches.touch_day >= spine.as_of_day - 90
    group by spine.customer_id, spine.as_of_date

),

latest as (

    select
        spine.customer_id,
        spine.as_of_date,
        spine.as_of_day - max(case when touches.is_click = 1 then touches.touch_day end) as days_since_last_click,
        max(touches.touched_at) as last_touch_at
    from spine
    left join touches
        on spine.customer_id = touches.customer_id
        and touches.touch_day < spine.as_of_day
    group by spine.customer_id, spine.as_of_date, spine.as_of_day

),

last_touch_channels as (

    -- the channel of the latest touch (the greatest channel name if touches tie)
    select
        latest.customer_id,
        latest.as_of_date,
        max(touches.channel) as last_touch_channel
    from latest
    inner join touches
        on latest.customer_id = touches.customer_id
        and latest.last_touch_at = touches.touched_at
    group by latest.customer_id, latest.as_of_date

)

select
    last_90_days.*,
    latest.days_since_last_click,
    last_touch_channels.last_touch_channel,
    latest.last_touch_at
from last_90_days
inner join latest
    on last_90_days.customer_id = latest.customer_id
    and last_90_days.as_of_date = latest.as_of_date
left join last_touch_channels
    on last_90_days.customer_id = last_touch_channels.customer_id
    and last_90_days.as_of_date = last_touch_channels.as_of_date
