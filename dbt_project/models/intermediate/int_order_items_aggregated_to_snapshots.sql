{#- Basket features per (customer, as-of date) from the lines of completed orders placed
    in [as_of - 365 days, as_of): units bought and distinct categories.

    Same stream technique as int_orders_aggregated_to_snapshots (frames end at 1 PRECEDING).
    Distinct categories in a trailing window, without a customer x snapshot x line join:
    a category bought on days p1 < p2 < ... is "in the window" of an as-of day D when its
    latest purchase before D is at most 365 days old, i.e. for D in (p_i, min(p_(i+1), p_i + 365)].
    Those intervals are disjoint, so each purchase day contributes +1 on p_i and -1 on
    min(p_(i+1), p_i + 365); the running sum of those steps over days < D counts the
    distinct categories of the window. -#}

with spine as (

    select customer_id, as_of_date
    from {{ ref('int_customers_snapshotted') }}

),

completed_orders as (

    select order_id, customer_id, ordered_at
    from {{ ref('stg_shop__orders') }}
    where status = 'completed'
      and {{ before_event_cutoff('ordered_at') }}

),

completed_lines as (

    select
        completed_orders.customer_id,
        cast(completed_orders.ordered_at as date) as order_date,
        completed_orders.ordered_at,
        order_items.category,
        order_items.quantity
    from {{ ref('stg_shop__order_items') }} as order_items
    inner join completed_orders
        on order_items.order_id = completed_orders.order_id

),

unit_days as (

    select
        customer_id,
        {{ day_number('order_date') }} as day_number,
        sum(quantity) as units,
        max(ordered_at) as last_line_ordered_at
    from completed_lines
    group by customer_id, order_date

),

category_days as (

    select distinct
        customer_id,
        category,
        {{ day_number('order_date') }} as day_number
    from completed_lines
    where category is not null

),

category_windows as (

    select
        customer_id,
        day_number as window_opens_on,
        case
            when lead(day_number) over (partition by customer_id, category order by day_number)
                < day_number + 365
            then lead(day_number) over (partition by customer_id, category order by day_number)
            else day_number + 365
        end as window_closes_on
    from category_days

),

stream as (

    select
        customer_id,
        {{ day_number('as_of_date') }} as day_number,
        as_of_date,
        cast(null as {{ dbt.type_int() }}) as units,
        cast(null as {{ dbt.type_int() }}) as category_step,
        cast(null as {{ dbt.type_timestamp() }}) as last_line_ordered_at
    from spine

    union all

    select customer_id, day_number, cast(null as date), units, cast(null as {{ dbt.type_int() }}), last_line_ordered_at
    from unit_days

    union all

    select customer_id, window_opens_on, cast(null as date), cast(null as {{ dbt.type_int() }}), 1, cast(null as {{ dbt.type_timestamp() }})
    from category_windows

    union all

    select customer_id, window_closes_on, cast(null as date), cast(null as {{ dbt.type_int() }}), -1, cast(null as {{ dbt.type_timestamp() }})
    from category_windows

),

aggregated as (

    select
        customer_id,
        as_of_date,
        sum(units) over last_365_days as units_365d,
        sum(category_step) over lifetime as distinct_categories_365d,
        max(last_line_ordered_at) over lifetime as last_line_ordered_at
    from stream
    window
        last_365_days as (partition by customer_id order by day_number range between 365 preceding and 1 preceding),
        lifetime as (partition by customer_id order by day_number range between unbounded preceding and 1 preceding)

)

select
    customer_id,
    as_of_date,
    coalesce(units_365d, 0) as units_365d,
    coalesce(distinct_categories_365d, 0) as distinct_categories_365d,
    last_line_ordered_at
from aggregated
where as_of_date is not null
