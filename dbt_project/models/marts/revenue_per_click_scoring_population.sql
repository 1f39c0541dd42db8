{{ config(materialized="view") }}

{#- Every customer at every snapshot, once per paid channel (channels whose touches cost
    money), for scoring expected revenue per click by channel: the input for value-based
    bidding.
    Campaign: training sees each click's own campaign; a click at scoring time would come
    from whatever the channel is running then, so each (snapshot, channel) carries the
    channel's current campaign: the campaign of its latest touch before the as-of day (ties
    within that touch time broken by campaign name). Point in time like every feature: only
    touches before the as-of date and before var as_of_end count; a channel with no touch
    with a campaign before the snapshot has a null campaign. Interval lookup: each
    channel's touch days span until its next touch day, so no snapshot aggregates the
    whole history. -#}

with touches as (

    select
        channel,
        campaign,
        touched_at,
        {{ day_number('cast(touched_at as date)') }} as touch_day
    from {{ ref('stg_shop__marketing_touches') }}
    where {{ before_event_cutoff('touched_at') }}

),

paid_channels as (

    select distinct channel
    from {{ ref('stg_shop__marketing_touches') }}
    where cost > 0
      and {{ before_event_cutoff('touched_at') }}

),

latest_touch_per_day as (

    select
        channel,
        campaign,
        touch_day,
        row_number() over (
            partition by channel, touch_day
            order by touched_at desc, campaign desc
        ) as latest_first
    from touches
    where campaign is not null

),

campaign_spans as (

    -- the channel's campaign from a day with touches until its next such day
    select
        channel,
        campaign,
        touch_day as from_day,
        lead(touch_day) over (partition by channel order by touch_day) as next_touch_day
    from latest_touch_per_day
    where latest_first = 1

),

snapshots as (

    select
        as_of_date,
        {{ day_number('as_of_date') }} as as_of_day
    from {{ ref('snapshot_calendar') }}

),

current_campaigns as (

    select
        snapshots.as_of_date,
        campaign_spans.channel,
        campaign_spans.campaign
    from snapshots
    cross join campaign_spans
    where campaign_spans.from_day < snapshots.as_of_day
      and (campaign_spans.next_touch_day is null
           or campaign_spans.next_touch_day >= snapshots.as_of_day)

)

select
    features.customer_id,
    features.as_of_date,
    paid_channels.channel,
    current_campaigns.campaign,
    {{ customer_feature_columns('features') }}
from {{ ref('customer_features') }} as features
cross join paid_channels
left join current_campaigns
    on current_campaigns.as_of_date = features.as_of_date
    and current_campaigns.channel = paid_channels.channel
