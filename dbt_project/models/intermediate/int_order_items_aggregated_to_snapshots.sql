{#- Basket features per (customer, as-of date) from the lines of completed orders placed
    in [as_of - 365 days, as_of): units bought and distinct categories. Lines are rolled
    up per customer and day (and category) first; each snapshot joins its customer's
    days in the window (same technique as int_orders_aggregated_to_snapshots). -#}
{{ config(**incremental_snapshot_config()) }}

with spine as (

    select
        customer_id,
        as_of_date,
        {{ day_number('as_of_date') }} as as_of_day
    from {{ ref('int_customers_snapshotted') }}
    where {{ snapshots_to_build('as_of_date') }}

),

fingerprints as (

    select * from {{ ref('int_snapshot_inputs_fingerprinted') }}

),

completed_lines as (

    select
        orders.customer_id,
        {{ day_number('cast(orders.ordered_at as date)') }} as order_day,
        orders.ordered_at,
        order_items.category,
        order_items.quantity
    from {{ ref('stg_shop__order_items') }} as order_items
    inner join {{ ref('stg_shop__orders') }} as orders
        on order_items.order_id = orders.order_id
    where orders.status = 'completed'
      and {{ before_event_cutoff('orders.ordered_at') }}

),

category_days as (

    select
        customer_id,
        order_day,
        category,
        sum(quantity) as units,
        max(ordered_at) as last_line_ordered_at
    from completed_lines
    group by customer_id, order_day, category

),

baskets as (

    select
        spine.customer_id,
        spine.as_of_date,
        coalesce(sum(category_days.units), 0) as units_365d,
        count(distinct category_days.category) as distinct_categories_365d,
        max(category_days.last_line_ordered_at) as last_line_ordered_at
    from spine
    left join category_days
        on spine.customer_id = category_days.customer_id
        and category_days.order_day < spine.as_of_day
        and category_days.order_day >= spine.as_of_day - 365
    group by spine.customer_id, spine.as_of_date

)

select
    baskets.*,
    {{ snapshot_fingerprint('fingerprints') }} as snapshot_fingerprint
from baskets
left join fingerprints
    on baskets.as_of_date = fingerprints.as_of_date
