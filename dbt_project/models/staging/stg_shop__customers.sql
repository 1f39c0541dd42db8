with source as (

    {{ shop_source('customers', {
        'customer_id': dbt.type_string(),
        'signed_up_at': dbt.type_timestamp(),
        'region': dbt.type_string(),
        'acquisition_channel': dbt.type_string()
    }) }}

),

renamed as (

    select
        customer_id,
        signed_up_at,
        region,
        acquisition_channel
    from source

)

select * from renamed
