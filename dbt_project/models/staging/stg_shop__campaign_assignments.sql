with source as (

    {{ shop_source('campaign_assignments', {
        'campaign': dbt.type_string(),
        'customer_id': dbt.type_string(),
        'assigned_at': dbt.type_timestamp(),
        'channel': dbt.type_string(),
        'treated': dbt.type_boolean(),
        'score_decile': dbt.type_int(),
        'horizon_days': dbt.type_int(),
        'planned_control_share': type_double()
    }) }}

),

renamed as (

    select
        campaign,
        customer_id,
        assigned_at,
        lower(channel) as channel,
        treated,
        score_decile,
        horizon_days,
        planned_control_share
    from source

)

select * from renamed
