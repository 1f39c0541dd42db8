{#- The uplift training set: one row per (campaign, customer) of the past randomised
    retention campaigns whose outcome has matured, treated or control.
    Features: the customer's point-in-time features at the start of the campaign's period
    (the snapshot on or before assigned_at; campaigns start on a snapshot date under the
    monthly cadence), so no feature sees an event at or after the assignment.
    Outcome (from campaign_outcomes): retained = at least one completed order in
    [assigned_at, assigned_at + horizon_days), and the revenue of those orders.
    label_matured_on = assigned_at + horizon_days: the back-test trains a campaign only on
    campaigns whose outcome was known by then. -#}
select
    outcomes.campaign,
    outcomes.customer_id,
    features.as_of_date,
    outcomes.assigned_at,
    outcomes.channel,
    outcomes.treated,
    outcomes.score_decile,
    outcomes.horizon_days,
    {{ customer_feature_columns('features') }},
    outcomes.retained,
    outcomes.horizon_revenue as revenue_in_horizon,
    {{ add_days('outcomes.horizon_days', 'cast(outcomes.assigned_at as date)') }}
        as label_matured_on
from {{ ref('campaign_outcomes') }} as outcomes
inner join {{ ref('customer_features') }} as features
    on features.customer_id = outcomes.customer_id
    and features.as_of_date = {{ period_start(snapshot_cadence(), 'outcomes.assigned_at') }}
where outcomes.is_matured
