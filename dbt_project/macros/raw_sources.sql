{#- Optional raw tables: a missing table (or column) means fewer features, never a crash. -#}

{#- The `shop` source node for `table_name`, read from the graph so that models outside
    staging can ask about a table without taking a source() dependency on it. -#}
{% macro _shop_source_node(table_name) %}
    {%- for node in graph.sources.values() -%}
        {%- if node.source_name == 'shop' and node.name == table_name -%}
            {{ return(node) }}
        {%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("no source shop." ~ table_name ~ " in _shop__sources.yml") }}
{% endmacro %}

{#- True when the raw table behind source('shop', table_name) exists in the warehouse.
    At parse time (nothing to ask yet) and in unit tests (inputs are mocked) it is true. -#}
{% macro source_exists(table_name) %}
    {%- if not execute or model.resource_type == 'unit_test' -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set node = _shop_source_node(table_name) -%}
    {%- set relation = adapter.get_relation(
            database=node.database, schema=node.schema, identifier=node.identifier) -%}
    {{ return(relation is not none) }}
{% endmacro %}

{#- A select of `columns` ({raw name: type}) from source('shop', table_name), cast to
    their types. A column missing from the raw table becomes its `defaults` expression
    (or a typed null); a missing table becomes an empty relation with the same columns,
    unless it is `required`: then the run stops and says so. -#}
{% macro shop_source(table_name, columns, defaults={}, required=false) %}
    {%- set present = source_exists(table_name) -%}
    {%- if required and not present -%}
        {%- set node = _shop_source_node(table_name) -%}
        {{ exceptions.raise_compiler_error(
            "Required raw table " ~ node.schema ~ "." ~ node.identifier ~ " is missing: load data "
            ~ "first (`ml generate` or `ml import`), or point vars raw_database/raw_schema at it.") }}
    {%- endif -%}
    {%- if present -%}
        {%- set relation = source('shop', table_name) -%}
        {%- set raw_columns = [] -%}
        {%- if execute -%}
            {%- for column in adapter.get_columns_in_relation(relation) -%}
                {%- do raw_columns.append(column.name | lower) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif %}
    select
    {%- for name, data_type in columns.items() %}
        {% if present and (not execute or name in raw_columns) -%}
            cast({{ adapter.quote(name) }} as {{ data_type }})
        {%- else -%}
            cast({{ defaults.get(name, 'null') }} as {{ data_type }})
        {%- endif %} as {{ name }}{{ "," if not loop.last }}
    {%- endfor %}
    {% if present -%}
    from {{ relation }}
    {%- else -%}
    {#- a one-row constant subquery keeps the empty select valid on every engine -#}
    from (select 1 as missing_table) as no_rows
    where 1 = 0
    {%- endif %}
{% endmacro %}
