{#- A label set exists only once its horizon has passed: no label window may end after the
    data does. -#}
select labels.*
from {{ ref('recommendation_labels') }} as labels
where labels.horizon_end > (select max(data_end) from {{ ref('int_snapshot_dates_generated') }})
