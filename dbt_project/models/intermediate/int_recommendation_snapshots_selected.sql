{#- The snapshots the recommender works on: the newest var('recommendation_snapshots')
    snapshots whose label horizon has matured (back-test cutoffs and the ranker's
    training snapshots) plus the scoring snapshot. Interactions are materialised per
    snapshot, so keeping a few bounds the marts' size on long histories. -#}

with dates as (

    select
        as_of_date,
        data_end,
        is_scoring_snapshot,
        {{ add_days(days_var('recommendation_horizon_days'), 'as_of_date') }} <= data_end
            as label_matured
    from {{ ref('int_snapshot_dates_generated') }}

),

ranked as (

    select
        dates.*,
        row_number() over (partition by label_matured order by as_of_date desc) as recency_rank
    from dates

)

select
    as_of_date,
    data_end,
    is_scoring_snapshot,
    label_matured,
    {{ day_number('as_of_date') }} as as_of_day
from ranked
where is_scoring_snapshot
   or (label_matured and recency_rank <= {{ days_var('recommendation_snapshots') }})
