{#- The customer_features columns that describe a customer (not keys or population flags),
    read from the built relation so models that reuse them never drift from it. -#}
{% macro customer_feature_columns(relation_alias) -%}
    {%- if execute -%}
        {%- set skip = ['customer_id', 'as_of_date', 'in_churn_population', 'in_propensity_population'] -%}
        {%- for column in adapter.get_columns_in_relation(ref('customer_features')) if column.name | lower not in skip -%}
            {{ relation_alias }}.{{ adapter.quote(column.name) }}{{ ",\n        " if not loop.last }}
        {%- endfor -%}
    {%- else -%}
        {{ relation_alias }}.customer_id
    {%- endif -%}
{%- endmacro %}
