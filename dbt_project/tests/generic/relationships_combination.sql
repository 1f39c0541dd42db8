{#- Fails on every row whose combination of columns has no row in `to` (e.g. a feature
    row for a (customer_id, as_of_date) that the spine does not hold). -#}
{% test relationships_combination(model, combination_of_columns, to) %}
select child.*
from {{ model }} as child
left join {{ to }} as parent
    on {% for column in combination_of_columns -%}
        child.{{ column }} = parent.{{ column }}{{ " and " if not loop.last }}
    {%- endfor %}
where parent.{{ combination_of_columns[0] }} is null
{% endtest %}
