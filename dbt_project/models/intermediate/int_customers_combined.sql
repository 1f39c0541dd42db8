{#- One row per customer known from raw.customers or from their orders. A customer is
    known from signup or their first order, whichever came first (the first order alone
    when raw.customers is absent). -#}

with customers as (

    select customer_id, signed_up_at, region, acquisition_channel
    from {{ ref('stg_shop__customers') }}
    where customer_id is not null

),

first_orders as (

    select
        customer_id,
        min(ordered_at) as first_order_at
    from {{ ref('stg_shop__orders') }}
    where {{ before_event_cutoff('ordered_at') }}
    group by customer_id

),

combined as (

    select
        coalesce(customers.customer_id, first_orders.customer_id) as customer_id,
        customers.signed_up_at,
        first_orders.first_order_at,
        case
            when customers.signed_up_at is null then first_orders.first_order_at
            when first_orders.first_order_at is null then customers.signed_up_at
            when customers.signed_up_at < first_orders.first_order_at then customers.signed_up_at
            else first_orders.first_order_at
        end as known_since_at,
        customers.region,
        customers.acquisition_channel
    from customers
    full outer join first_orders
        on customers.customer_id = first_orders.customer_id

)

select * from combined
where known_since_at is not null
