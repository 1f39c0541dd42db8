with source as (

    {{ shop_source('order_items', {
        'order_id': dbt.type_string(),
        'line_number': dbt.type_int(),
        'product_id': dbt.type_string(),
        'category': dbt.type_string(),
        'quantity': dbt.type_int(),
        'price': type_double()
    }) }}

),

renamed as (

    select
        order_id,
        line_number,
        product_id,
        category,
        quantity,
        price as unit_price
    from source

)

select * from renamed
