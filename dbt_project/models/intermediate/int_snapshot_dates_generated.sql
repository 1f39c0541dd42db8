{#- The as-of dates, derived from the data's own date range:
    data_start = date of the first order; data_end = the day after the last order's date
    (or var as_of_end). One snapshot on the first day of every period (month or week)
    strictly after data_start and before data_end, plus the scoring snapshot on data_end.
    A label with horizon h has matured when as_of_date + h days <= data_end. -#}
{%- set cutoff = as_of_end() -%}
{%- set cadence = snapshot_cadence() -%}

with orders as (

    select ordered_at
    from {{ ref('stg_shop__orders') }}
    where {{ before_event_cutoff('ordered_at') }}

),

data_window as (

    select
        cast(min(ordered_at) as date) as data_start,
        {% if cutoff -%}
        cast('{{ cutoff }}' as date) as data_end
        {%- else -%}
        {{ add_days(1, 'cast(max(ordered_at) as date)') }} as data_end
        {%- endif %}
    from orders

),

days as (

    {{ date_spine('(select data_start from data_window)', '(select data_end from data_window)') }}

),

period_starts as (

    select date_day as as_of_date
    from days
    where date_day > (select data_start from data_window)
      and date_day = {{ period_start(cadence, 'date_day') }}

),

as_of_dates as (

    -- days stop before data_end, so the scoring snapshot is never a duplicate
    select as_of_date, false as is_scoring_snapshot from period_starts
    union all
    select data_end as as_of_date, true as is_scoring_snapshot from data_window
    where data_end is not null

)

select
    as_of_dates.as_of_date,
    data_window.data_start,
    data_window.data_end,
    as_of_dates.is_scoring_snapshot,
    {{ add_days(days_var('churn_horizon_days'), 'as_of_dates.as_of_date') }} <= data_window.data_end
        as churn_label_matured,
    {{ add_days(days_var('propensity_horizon_days'), 'as_of_dates.as_of_date') }} <= data_window.data_end
        as propensity_label_matured
from as_of_dates
cross join data_window
