with source as (

    {{ shop_source('media_spend', {
        'date': 'date',
        'channel': dbt.type_string(),
        'spend': type_double(),
        'impressions': dbt.type_int(),
        'clicks': dbt.type_int()
    }) }}

),

renamed as (

    select
        date as spend_date,
        channel,
        spend,
        coalesce(impressions, 0) as impressions,
        coalesce(clicks, 0) as clicks
    from source
    where {{ before_event_cutoff('cast(date as ' ~ dbt.type_timestamp() ~ ')') }}

)

select * from renamed
