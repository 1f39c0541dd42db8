{#- Lines of completed orders with their customer and time: the interactions every
    recommendation model reads. Lines without a product id cannot be recommended or
    counted, so they are dropped here (the one place). An absent order_items table gives
    an empty relation (stg_shop__order_items is then empty). -#}

select
    orders.customer_id,
    order_items.product_id,
    order_items.category,
    order_items.quantity,
    order_items.unit_price,
    orders.order_id,
    orders.ordered_at,
    {{ day_number('cast(orders.ordered_at as date)') }} as order_day
from {{ ref('stg_shop__order_items') }} as order_items
inner join {{ ref('stg_shop__orders') }} as orders
    on order_items.order_id = orders.order_id
where orders.status = 'completed'
  and order_items.product_id is not null
  and {{ before_event_cutoff('orders.ordered_at') }}
