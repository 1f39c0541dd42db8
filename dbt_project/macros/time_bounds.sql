{#- The time bounds every model agrees on. -#}

{#- var('as_of_end') as an ISO date string, or none when unset ('' / 'None' / 'null' from
    templated callers count as unset). Events on or after it are ignored everywhere. -#}
{% macro as_of_end() %}
    {%- set value = var('as_of_end', none) -%}
    {%- if value is none or (value | string | trim | lower) in ('', 'none', 'null') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error("var as_of_end must be YYYY-MM-DD, got '" ~ text ~ "'") }}
    {%- endif -%}
    {{ return(text) }}
{% endmacro %}

{#- SQL condition keeping events before the as_of_end cutoff (always true when unset). -#}
{% macro before_event_cutoff(timestamp_column) -%}
    {%- set cutoff = as_of_end() -%}
    {%- if cutoff -%}
        {{ timestamp_column }} < cast('{{ cutoff }}' as {{ dbt.type_timestamp() }})
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}

{#- The load time raw events must precede, as a SQL timestamp: var('load_time') or the
    start of this dbt invocation (UTC). -#}
{% macro load_time() -%}
    {%- set value = var('load_time', none) -%}
    {%- if value is none or (value | string | trim | lower) in ('', 'none', 'null') -%}
        {%- set value = run_started_at.strftime('%Y-%m-%d %H:%M:%S') -%}
    {%- endif -%}
    cast('{{ value }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- A var that must be a positive whole number of days (templated callers pass strings). -#}
{% macro days_var(name) %}
    {%- set value = var(name) | string | trim -%}
    {%- if not modules.re.match('^[0-9]+$', value) or value | int < 1 -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ " must be a positive whole number of days, got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ return(value | int) }}
{% endmacro %}

{#- Snapshot cadence var, validated. -#}
{% macro snapshot_cadence() %}
    {%- set value = var('snapshot_cadence', 'month') | string | trim | lower -%}
    {%- if value not in ('month', 'week') -%}
        {{ exceptions.raise_compiler_error("var snapshot_cadence must be month or week, got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ return(value) }}
{% endmacro %}
