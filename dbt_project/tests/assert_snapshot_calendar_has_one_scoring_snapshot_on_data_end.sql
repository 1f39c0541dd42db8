-- The calendar has exactly one scoring snapshot and it is on data_end, the latest as-of
-- date; data_start is before every as-of date. Returns the offending summary row.
with summary as (

    select
        sum(case when is_scoring_snapshot then 1 else 0 end) as scoring_snapshots,
        max(case when is_scoring_snapshot then as_of_date end) as scoring_as_of,
        max(as_of_date) as last_as_of,
        min(as_of_date) as first_as_of,
        max(data_end) as data_end,
        min(data_start) as data_start
    from {{ ref('snapshot_calendar') }}

)

select *
from summary
where scoring_snapshots != 1
   or scoring_as_of != data_end
   or last_as_of != data_end
   or first_as_of <= data_start
