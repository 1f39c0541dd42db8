{#- Leakage guards: an aggregate's event timestamps must fall inside its window.
    `column_name` holds the latest (or earliest) event an aggregate used; `boundary` is a
    SQL date expression on the same row (e.g. as_of_date) taken as midnight. -#}

{#- Features: every event used happened strictly before the as-of date. -#}
{% test happens_before(model, column_name, boundary) %}
select *
from {{ model }}
where {{ column_name }} >= cast({{ boundary }} as {{ dbt.type_timestamp() }})
{% endtest %}

{#- Labels: every event used happened on or after the as-of date. -#}
{% test happens_on_or_after(model, column_name, boundary) %}
select *
from {{ model }}
where {{ column_name }} < cast({{ boundary }} as {{ dbt.type_timestamp() }})
{% endtest %}
