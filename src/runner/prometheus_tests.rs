//! Reading Prometheus answers (the wire format of docs/querying/api.md)
//! and judging their values.

use super::*;

const QUERY: &str = "sum(rate(errors[5m]))";

fn answer(body: &str) -> QueryResult {
    parse_answer(StatusCode::OK, body.as_bytes())
        .unwrap_or_else(|e| panic!("{e:?}"))
        .result
}

fn vector(values: &[(&str, &str)]) -> QueryResult {
    let series: Vec<String> = values
        .iter()
        .map(|(job, value)| {
            format!(
                r#"{{"metric":{{"__name__":"up","job":"{job}"}},"value":[1435781451.781,"{value}"]}}"#
            )
        })
        .collect();
    answer(&format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        series.join(",")
    ))
}

const MAX: Bounds = Bounds {
    min: None,
    max: Some(0.05),
};

#[test]
fn a_vector_within_bounds_passes_and_logs_each_series() {
    let evaluation = evaluate(&vector(&[("web", "0.01"), ("api", "0.05")]), QUERY, MAX);
    assert_eq!(evaluation.verdict, Ok(()));
    assert_eq!(
        evaluation.lines,
        [r#"up{job="web"} = 0.01 ok"#, r#"up{job="api"} = 0.05 ok"#]
    );
}

#[test]
fn one_series_over_max_fails_and_is_named() {
    let evaluation = evaluate(&vector(&[("web", "0.01"), ("api", "0.2")]), QUERY, MAX);
    assert_eq!(
        evaluation.verdict,
        Err(r#"up{job="api"} = 0.2 (over max 0.05)"#.into())
    );
    assert_eq!(
        evaluation.lines[1],
        r#"up{job="api"} = 0.2 FAIL: over max 0.05"#
    );
}

#[test]
fn several_failures_name_the_first_and_count_the_rest() {
    let result = vector(&[("a", "1"), ("b", "2"), ("c", "0")]);
    let verdict = evaluate(&result, QUERY, MAX).verdict.unwrap_err();
    assert_eq!(
        verdict,
        r#"up{job="a"} = 1 (over max 0.05), and 1 more of 3 series"#
    );
}

#[test]
fn under_min_fails() {
    let bounds = Bounds {
        min: Some(0.99),
        max: None,
    };
    let verdict = evaluate(&vector(&[("web", "0.5")]), QUERY, bounds).verdict;
    assert_eq!(
        verdict,
        Err(r#"up{job="web"} = 0.5 (under min 0.99)"#.into())
    );
    assert_eq!(
        evaluate(&vector(&[("web", "1")]), QUERY, bounds).verdict,
        Ok(())
    );
}

#[test]
fn nan_fails_and_infinities_are_compared() {
    let verdict = evaluate(&vector(&[("web", "NaN")]), QUERY, MAX).verdict;
    assert_eq!(
        verdict,
        Err(r#"up{job="web"} = NaN (NaN is not a number)"#.into())
    );
    assert!(
        evaluate(&vector(&[("web", "+Inf")]), QUERY, MAX)
            .verdict
            .is_err()
    );
    assert_eq!(
        evaluate(&vector(&[("web", "-Inf")]), QUERY, MAX).verdict,
        Ok(())
    );
    assert_eq!(parse_value("+Inf"), Ok(f64::INFINITY));
    assert_eq!(parse_value("-Inf"), Ok(f64::NEG_INFINITY));
    assert_eq!(parse_value("1e-3"), Ok(0.001));
    assert!(parse_value("NaN").unwrap().is_nan());
    assert!(parse_value("many").is_err());
}

#[test]
fn a_scalar_is_checked_like_a_series() {
    let result = answer(
        r#"{"status":"success","data":{"resultType":"scalar","result":[1435781451.781,"0.07"]}}"#,
    );
    let evaluation = evaluate(&result, QUERY, MAX);
    assert_eq!(
        evaluation.verdict,
        Err("scalar = 0.07 (over max 0.05)".into())
    );
    let result = answer(
        r#"{"status":"success","data":{"resultType":"scalar","result":[1435781451.781,"0.01"]}}"#,
    );
    assert_eq!(evaluate(&result, QUERY, MAX).verdict, Ok(()));
}

#[test]
fn an_empty_vector_is_no_data() {
    let result = answer(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
    assert_eq!(
        evaluate(&result, QUERY, MAX).verdict,
        Err(format!("no data for {QUERY}"))
    );
}

#[test]
fn a_matrix_or_string_is_refused() {
    let matrix = answer(
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1435781430.781,"1"]]}]}}"#,
    );
    let verdict = evaluate(&matrix, QUERY, MAX).verdict.unwrap_err();
    assert!(
        verdict.contains("not an instant vector or scalar"),
        "{verdict}"
    );
    let string = answer(
        r#"{"status":"success","data":{"resultType":"string","result":[1435781451.781,"x"]}}"#,
    );
    let verdict = evaluate(&string, QUERY, MAX).verdict.unwrap_err();
    assert!(
        verdict.contains("not an instant vector or scalar"),
        "{verdict}"
    );
}

#[test]
fn a_histogram_series_fails() {
    let result = answer(
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"web"},"histogram":[1435781451.781,{"count":"1","sum":"2","buckets":[]}]}]}}"#,
    );
    let verdict = evaluate(&result, QUERY, MAX).verdict.unwrap_err();
    assert_eq!(
        verdict,
        r#"{job="web"} = histogram (a histogram, not a float)"#
    );
}

#[test]
fn an_error_answer_gives_prometheus_error_type_and_text() {
    let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}"#;
    let refused = parse_answer(StatusCode::BAD_REQUEST, body.as_bytes()).unwrap_err();
    assert_eq!(
        refused.message,
        r#"Prometheus answered HTTP 400: bad_data: invalid parameter "query": 1:5: parse error"#
    );
    assert!(!refused.show_body);
    let body = r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
    let refused = parse_answer(StatusCode::SERVICE_UNAVAILABLE, body.as_bytes()).unwrap_err();
    assert_eq!(
        refused.message,
        "Prometheus answered HTTP 503: timeout: query timed out"
    );
}

#[test]
fn a_non_prometheus_answer_is_refused() {
    let refused = parse_answer(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>").unwrap_err();
    assert_eq!(refused.message, "Prometheus answered HTTP 502");
    assert!(refused.show_body);
    let refused = parse_answer(StatusCode::OK, b"hello").unwrap_err();
    assert!(
        refused.message.starts_with("not a Prometheus answer"),
        "{refused:?}"
    );
}

#[test]
fn warnings_are_kept() {
    let body = r#"{"status":"success","warnings":["partial response"],"data":{"resultType":"vector","result":[]}}"#;
    let answer = parse_answer(StatusCode::OK, body.as_bytes()).unwrap();
    assert_eq!(answer.warnings, ["partial response"]);
}

#[test]
fn series_names_look_like_promql() {
    let mut metric = BTreeMap::new();
    assert_eq!(series_name(&metric), "{}");
    metric.insert("code".to_string(), "500".to_string());
    assert_eq!(series_name(&metric), r#"{code="500"}"#);
    metric.insert("__name__".to_string(), "http_requests_total".to_string());
    metric.insert("job".to_string(), "web".to_string());
    assert_eq!(
        series_name(&metric),
        r#"http_requests_total{code="500", job="web"}"#
    );
}
