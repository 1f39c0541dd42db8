{#- Lift-test readouts that calibrate the media-mix model (ml.mmm.calibration): one row per
    test; empty when raw.media_lift_tests is absent (the model is then uncalibrated).
    ml.mmm checks each row against media_mix_daily (known channel, period inside the spend
    window) and names table, column and rows when one does not fit. -#}
{{ config(partition_by=none) }}

select
    test_id,
    channel,
    start_date,
    end_date,
    spend_change,
    incremental_new_customers,
    standard_error,
    cast({{ dbt.datediff('start_date', 'end_date', 'day') }} + 1 as {{ dbt.type_int() }}) as test_days
from {{ ref('stg_shop__media_lift_tests') }}
