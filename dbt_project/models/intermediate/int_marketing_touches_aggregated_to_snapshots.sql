{#- Marketing features per (customer, as-of date) from touches before the as-of date:
    touches and clicks per channel over the trailing 90 days, the latest click and the
    channel of the latest touch ever.
    Same stream technique as int_orders_aggregated_to_snapshots (frames end at 1 PRECEDING). -#}
{%- set channels = ['SEM', 'SEO', 'CRM', 'Display'] -%}

with spine as (

    select customer_id, as_of_date
    from {{ ref('int_customers_snapshotted') }}

),

touches as (

    select
        customer_id,
        touched_at,
        cast(touched_at as date) as touch_date,
        channel,
        case when clicked then 1 else 0 end as is_click,
        -- the day's latest touch gives the day's last channel (touch_id breaks ties)
        row_number() over (
            partition by customer_id, cast(touched_at as date)
            order by touched_at desc, touch_id desc
        ) as recency_in_day
    from {{ ref('stg_shop__marketing_touches') }}
    where customer_id is not null
      and {{ before_event_cutoff('touched_at') }}

),

touch_days as (

    select
        customer_id,
        {{ day_number('touch_date') }} as day_number,
        count(*) as touches,
        sum(is_click) as clicks,
        {%- for channel in channels %}
        sum(case when lower(channel) = '{{ channel | lower }}' then 1 else 0 end) as touches_{{ channel | lower }},
        sum(case when lower(channel) = '{{ channel | lower }}' then is_click else 0 end) as clicks_{{ channel | lower }},
        {%- endfor %}
        max(case when recency_in_day = 1 then channel end) as last_channel,
        max(touched_at) as last_touch_at
    from touches
    group by customer_id, touch_date

),

stream as (

    select
        customer_id,
        {{ day_number('as_of_date') }} as day_number,
        as_of_date,
        cast(null as {{ dbt.type_int() }}) as touches,
        cast(null as {{ dbt.type_int() }}) as clicks,
        {%- for channel in channels %}
        cast(null as {{ dbt.type_int() }}) as touches_{{ channel | lower }},
        cast(null as {{ dbt.type_int() }}) as clicks_{{ channel | lower }},
        {%- endfor %}
        cast(null as {{ dbt.type_string() }}) as last_channel,
        cast(null as {{ dbt.type_timestamp() }}) as last_touch_at
    from spine

    union all

    select
        customer_id,
        day_number,
        cast(null as date),
        touches,
        clicks,
        {%- for channel in channels %}
        touches_{{ channel | lower }},
        clicks_{{ channel | lower }},
        {%- endfor %}
        last_channel,
        last_touch_at
    from touch_days

),

aggregated as (

    select
        customer_id,
        as_of_date,
        day_number,
        sum(touches) over last_90_days as touches_90d,
        sum(clicks) over last_90_days as clicks_90d,
        {%- for channel in channels %}
        sum(touches_{{ channel | lower }}) over last_90_days as touches_90d_{{ channel | lower }},
        sum(clicks_{{ channel | lower }}) over last_90_days as clicks_90d_{{ channel | lower }},
        {%- endfor %}
        max(case when clicks > 0 then day_number end) over lifetime as last_click_day_number,
        last_value(last_channel ignore nulls) over lifetime as last_touch_channel,
        max(last_touch_at) over lifetime as last_touch_at
    from stream
    window
        last_90_days as (partition by customer_id order by day_number range between 90 preceding and 1 preceding),
        lifetime as (partition by customer_id order by day_number range between unbounded preceding and 1 preceding)

)

select
    customer_id,
    as_of_date,
    coalesce(touches_90d, 0) as touches_90d,
    coalesce(clicks_90d, 0) as clicks_90d,
    {%- for channel in channels %}
    coalesce(touches_90d_{{ channel | lower }}, 0) as touches_90d_{{ channel | lower }},
    coalesce(clicks_90d_{{ channel | lower }}, 0) as clicks_90d_{{ channel | lower }},
    {%- endfor %}
    day_number - last_click_day_number as days_since_last_click,
    last_touch_channel,
    last_touch_at
from aggregated
where as_of_date is not null
