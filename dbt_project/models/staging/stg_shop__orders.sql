{#- Only customer_id, order_id, ordered_at and revenue are required raw columns: an orders
    file without status or discount means every order completed at full price. -#}
with source as (

    {{ shop_source('orders', {
        'order_id': dbt.type_string(),
        'customer_id': dbt.type_string(),
        'ordered_at': dbt.type_timestamp(),
        'revenue': type_double(),
        'discount': type_double(),
        'status': dbt.type_string(),
        'order_channel': dbt.type_string()
    }, defaults={'discount': '0', 'status': "'completed'"}, required=true) }}

),

renamed as (

    select
        order_id,
        customer_id,
        ordered_at,
        revenue,
        discount,
        lower(trim(status)) as status,
        lower(trim(order_channel)) as order_channel
    from source

)

select * from renamed
