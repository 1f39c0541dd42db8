{#- Fails on every row whose timestamp is at or after the load time (var load_time, or when
    this dbt invocation started): such an event cannot have happened yet. -#}
{% test not_after_load_time(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} >= {{ load_time() }}
{% endtest %}
