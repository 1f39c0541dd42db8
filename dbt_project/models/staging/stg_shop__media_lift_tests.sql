with source as (

    {{ shop_source('media_lift_tests', {
        'test_id': dbt.type_string(),
        'channel': dbt.type_string(),
        'start_date': 'date',
        'end_date': 'date',
        'spend_change': type_double(),
        'incremental_new_customers': type_double(),
        'standard_error': type_double()
    }) }}

)

select * from source
where test_id is not null
  and {{ before_event_cutoff('cast(end_date as ' ~ dbt.type_timestamp() ~ ')') }}
