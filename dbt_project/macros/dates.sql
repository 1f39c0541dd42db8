{#- Date arithmetic that returns dates (dbt.dateadd returns timestamps on some engines). -#}
{% macro add_days(days, date_expression) -%}
    cast({{ dbt.dateadd('day', days, date_expression) }} as date)
{%- endmacro %}

{#- Whole days since 1970-01-01: trailing windows become integer comparisons
    ("last 30 days" = day >= as_of_day - 30 and day < as_of_day) on every engine. -#}
{% macro day_number(date_expression) -%}
    {{ dbt.datediff("cast('1970-01-01' as date)", "cast(" ~ date_expression ~ " as date)", 'day') }}
{%- endmacro %}

{#- First day of the period holding the date: cadence 'month', or 'week' (ISO weeks start
    on Monday on every engine). -#}
{% macro period_start(cadence, date_expression) %}
    {{ return(adapter.dispatch('period_start')(cadence, date_expression)) }}
{% endmacro %}

{% macro default__period_start(cadence, date_expression) -%}
    cast(date_trunc('{{ cadence }}', cast({{ date_expression }} as date)) as date)
{%- endmacro %}

{#- Weeks: back to the Monday by day of week (1 = Sunday) rather than
    date_trunc(..., isoweek), which the local emulator (bqemulator) cannot run. -#}
{% macro bigquery__period_start(cadence, date_expression) -%}
    {%- if cadence == 'week' -%}
    date_sub(cast({{ date_expression }} as date),
             interval mod(extract(dayofweek from cast({{ date_expression }} as date)) + 5, 7) day)
    {%- else -%}
    date_trunc(cast({{ date_expression }} as date), month)
    {%- endif -%}
{%- endmacro %}

{#- One row per day in [start_date, end_date) as `date_day` (up to 100,000 days), from a
    cross join of digits: plain SQL, so it runs unchanged on every engine. -#}
{% macro date_spine(start_date, end_date) %}
    with digits as (
        select 0 as digit union all select 1 union all select 2 union all select 3
        union all select 4 union all select 5 union all select 6 union all select 7
        union all select 8 union all select 9
    ),
    day_offsets as (
        select d1.digit + 10 * d2.digit + 100 * d3.digit + 1000 * d4.digit + 10000 * d5.digit
            as day_offset
        from digits as d1
        cross join digits as d2
        cross join digits as d3
        cross join digits as d4
        cross join digits as d5
    )
    select {{ add_days('day_offset', start_date) }} as date_day
    from day_offsets
    where day_offset < {{ dbt.datediff(start_date, end_date, 'day') }}
{% endmacro %}

{#- A timestamp plus a number of days, still a timestamp: dbt.dateadd returns a DATETIME on
    BigQuery, which BigQuery will not compare with a TIMESTAMP. -#}
{% macro add_days_to_timestamp(days, timestamp_expression) %}
    {{ return(adapter.dispatch('add_days_to_timestamp')(days, timestamp_expression)) }}
{% endmacro %}

{% macro default__add_days_to_timestamp(days, timestamp_expression) -%}
    {{ dbt.dateadd('day', days, timestamp_expression) }}
{%- endmacro %}

{% macro bigquery__add_days_to_timestamp(days, timestamp_expression) -%}
    timestamp_add({{ timestamp_expression }}, interval {{ days }} day)
{%- endmacro %}
