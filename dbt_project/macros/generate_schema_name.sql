{#- Models land in schemas named exactly after their folder config (staging, intermediate,
    marts), optionally prefixed by WAREHOUSE_SCHEMA_PREFIX (e.g. per developer). On
    BigQuery the prefix defaults to the profile's dataset, so datasets read cmp_marts etc. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set default_prefix = target.schema ~ '_' if target.type == 'bigquery' else '' -%}
    {%- set prefix = env_var('WAREHOUSE_SCHEMA_PREFIX', default_prefix) -%}
    {{ prefix ~ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
