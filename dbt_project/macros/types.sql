{#- dbt.type_float() is FLOAT (4 bytes) on DuckDB; features want 8-byte floats everywhere. -#}
{% macro type_double() %}
    {{ return(adapter.dispatch('type_double')()) }}
{% endmacro %}

{% macro default__type_double() %}{{ return('double') }}{% endmacro %}

{% macro bigquery__type_double() %}{{ return('float64') }}{% endmacro %}
