{{ config(materialized="view") }}

{#- Every customer at every snapshot, once per paid channel (channels whose touches cost
    money), for scoring expected revenue per click by channel: the input for value-based
    bidding. The campaign is unknown at scoring time. -#}

with paid_channels as (

    select distinct channel
    from {{ ref('stg_shop__marketing_touches') }}
    where cost > 0
      and {{ before_event_cutoff('touched_at') }}

)

select
    features.customer_id,
    features.as_of_date,
    paid_channels.channel,
    cast(null as {{ dbt.type_string() }}) as campaign,
    {{ customer_feature_columns('features') }}
from {{ ref('customer_features') }} as features
cross join paid_channels
