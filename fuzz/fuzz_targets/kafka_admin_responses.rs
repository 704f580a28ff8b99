//! Fuzz the decoders of the cluster-state answers (DescribeAcls,
//! DescribeUserScramCredentials, DescribeClientQuotas, DescribeConfigs and
//! the create/alter results), in every version kvault speaks: never a
//! panic; and the cluster-state blob decoder.
#![no_main]
use kvault::kafka::protocol as p;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (v, body) = match data.split_first() {
        Some((v, b)) => (i16::from(*v % 5), b),
        None => return,
    };
    let _ = p::describe_acls_response(v, body);
    let _ = p::create_acls_response(v, body);
    let _ = p::describe_scram_response(body);
    let _ = p::alter_scram_response(body);
    let _ = p::describe_quotas_response(v.min(1), body);
    let _ = p::alter_quotas_response(v.min(1), body);
    let _ = p::describe_configs_response(v.max(1), body);
    let _ = p::alter_configs_response(v.min(1), body);
    let _ = kvault::image::cluster::decode(body);
});
