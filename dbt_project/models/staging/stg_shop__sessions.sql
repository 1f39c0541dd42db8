with source as (

    {{ shop_source('sessions', {
        'session_id': dbt.type_string(),
        'customer_id': dbt.type_string(),
        'started_at': dbt.type_timestamp(),
        'traffic_source': dbt.type_string(),
        'page_views': dbt.type_int(),
        'cart_adds': dbt.type_int()
    }) }}

),

renamed as (

    select
        session_id,
        customer_id,
        started_at,
        traffic_source,
        page_views,
        cart_adds
    from source

)

select * from renamed
