//! The `process_*` series client_golang's process collector adds to RoadRunner's registry (Linux,
//! read from /proc with the `procfs` crate), with its names, help texts and values: an unlimited
//! limit is Go's `math.MaxUint64`, as Go's procfs reads "unlimited".

use procfs::process::{LimitValue, Process};
use rr_runtime::metrics::{Collector, Family, Kind};

pub struct ProcessCollector;

fn limit(value: LimitValue) -> f64 {
    match value {
        LimitValue::Value(v) => v as f64,
        LimitValue::Unlimited => u64::MAX as f64,
    }
}

impl Collector for ProcessCollector {
    fn collect(&self, out: &mut Vec<Family>) {
        let Ok(me) = Process::myself() else { return };
        let gauge = |name: &str, help: &str, v: f64| Family::single(name, help, Kind::Gauge, v);
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            let cpu = (stat.utime + stat.stime) as f64 / ticks;
            out.push(Family::single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", Kind::Counter, cpu));
            out.push(gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", stat.vsize as f64));
            out.push(gauge("process_resident_memory_bytes", "Resident memory size in bytes.", (stat.rss * procfs::page_size()) as f64));
            if let Ok(boot) = procfs::boot_time_secs() {
                let started = boot as f64 + stat.starttime as f64 / ticks;
                out.push(gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", started));
            }
        }
        if let Ok(fds) = me.fd_count() {
            out.push(gauge("process_open_fds", "Number of open file descriptors.", fds as f64));
        }
        if let Ok(limits) = me.limits() {
            out.push(gauge("process_max_fds", "Maximum number of open file descriptors.", limit(limits.max_open_files.soft_limit)));
            let max_vsize = limit(limits.max_address_space.soft_limit);
            out.push(gauge("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", max_vsize));
        }
    }
}
