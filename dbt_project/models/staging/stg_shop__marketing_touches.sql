with source as (

    {{ shop_source('marketing_touches', {
        'touch_id': dbt.type_string(),
        'customer_id': dbt.type_string(),
        'touched_at': dbt.type_timestamp(),
        'channel': dbt.type_string(),
        'campaign': dbt.type_string(),
        'cost': type_double(),
        'clicked': dbt.type_boolean()
    }) }}

),

renamed as (

    select
        touch_id,
        customer_id,
        touched_at,
        channel,
        campaign,
        cost,
        clicked
    from source

)

select * from renamed
