{#- Fails on every row whose date lies after the load time's day (var load_time, or when
    this dbt invocation started): a day that has not begun has no spend yet. The date is
    cast to a timestamp (midnight), so the comparison types agree on every engine. -#}
{% test date_not_after_load_time(model, column_name) %}
select {{ column_name }}
from {{ model }}
where cast({{ column_name }} as {{ dbt.type_timestamp() }}) >= {{ load_time() }}
{% endtest %}
