{#- Features of optional raw tables: null when the table is absent, so "no data" never
    reads as "no activity". `table_present` comes from source_exists(). -#}

{#- A count from a left-joined aggregate: 0 when the table exists but the customer has no
    rows there, null when the table is absent. -#}
{% macro optional_count(table_present, expression) -%}
    {%- if table_present -%}
        cast(coalesce({{ expression }}, 0) as {{ dbt.type_int() }})
    {%- else -%}
        cast(null as {{ dbt.type_int() }})
    {%- endif -%}
{%- endmacro %}

{#- Any other value: as computed when the table exists, null when it is absent. -#}
{% macro optional_value(table_present, expression, data_type) -%}
    {%- if table_present -%}
        cast({{ expression }} as {{ data_type }})
    {%- else -%}
        cast(null as {{ data_type }})
    {%- endif -%}
{%- endmacro %}
