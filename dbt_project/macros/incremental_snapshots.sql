{#- Incremental snapshot models: each run rebuilds only the as-of dates whose inputs changed.

    A snapshot's point-in-time rows depend only on events before its as-of date. So
    int_snapshot_inputs_fingerprinted fingerprints, per as-of date, every staged event
    before it; each incremental model stores that fingerprint (mixed with its own code
    checksum and the vars it reads) on its rows as snapshot_fingerprint, and rebuilds the
    snapshots whose fingerprint is new or different: a new snapshot, late or re-imported
    history, a changed model or var. Snapshots that left the calendar (the previous scoring
    snapshot, another cadence) are deleted. An incremental build therefore equals a full
    one; `dbt build --full-refresh` (the features DAG's full_refresh Param) rebuilds all.
    Not covered: a change to a macro these models call; run a full refresh after one. -#}

{#- The dbt config every incremental snapshot model uses: replace whole snapshots, i.e.
    partitions on BigQuery (insert_overwrite), delete+insert by as_of_date on DuckDB. -#}
{% macro incremental_snapshot_config() %}
    {%- set on_bigquery = target.type == 'bigquery' -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'insert_overwrite' if on_bigquery else 'delete+insert',
        'unique_key': 'as_of_date',
        'partition_by': {'field': 'as_of_date', 'data_type': 'date'} if on_bigquery else none,
        'cluster_by': ['customer_id'] if on_bigquery else none,
        'on_schema_change': 'sync_all_columns',
        'post_hook': "{{ delete_snapshots_outside_calendar() }}",
    }) }}
{% endmacro %}

{#- A 64-bit hash of the values (SQL expressions), null-safe. -#}
{% macro row_fingerprint(expressions) %}
    {{ return(adapter.dispatch('row_fingerprint')(expressions)) }}
{% endmacro %}

{% macro default__row_fingerprint(expressions) -%}
    cast(hash({{ expressions | join(', ') }}) % 1000000007 as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro bigquery__row_fingerprint(expressions) -%}
    mod(farm_fingerprint(concat(
        {%- for expression in expressions %}
        coalesce(cast({{ expression }} as string), '<null>'){{ ", '|'," if not loop.last }}
        {%- endfor %}
    )), 1000000007)
{%- endmacro %}

{#- This model's fingerprint of a snapshot from its row in int_snapshot_inputs_fingerprinted
    (alias `fingerprints`): the inputs, this model's code and the vars features read. -#}
{% macro snapshot_fingerprint(fingerprints) -%}
    {%- set version = (model.checksum.checksum if model.checksum is defined else '')
        ~ '/' ~ days_var('churn_active_window_days') -%}
    {{ row_fingerprint([fingerprints ~ '.events_before', fingerprints ~ '.events_fingerprint',
                        "'" ~ version ~ "'"]) }}
{%- endmacro %}

{#- Condition on a snapshot's as-of date column: true for the snapshots this run builds
    (all of them unless incremental, or when the table predates snapshot_fingerprint). -#}
{% macro snapshots_to_build(as_of_column) -%}
    {%- set fingerprinted = is_incremental() and 'snapshot_fingerprint' in (
            adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list) -%}
    {%- if fingerprinted -%}
    {{ as_of_column }} in (
        select fingerprints.as_of_date
        from {{ ref('int_snapshot_inputs_fingerprinted') }} as fingerprints
        left join (select distinct as_of_date, snapshot_fingerprint from {{ this }}) as built
            on built.as_of_date = fingerprints.as_of_date
            and built.snapshot_fingerprint = {{ snapshot_fingerprint('fingerprints') }}
        where built.as_of_date is null
    )
    {%- else -%}
    1 = 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook: drop the snapshots no longer in the calendar (inside the build's transaction
    on DuckDB; a second statement on BigQuery, so for a moment readers may still see the
    previous scoring snapshot next to the new one). -#}
{% macro delete_snapshots_outside_calendar() -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where as_of_date not in (select as_of_date from {{ ref('int_snapshot_inputs_fingerprinted') }})
    {%- endif -%}
{%- endmacro %}
