//! The read plan, pure: which Modbus requests cover a PLC's tags. Tags of one unit and table are merged into the
//! fewest requests within the per-request limit, bridging gaps of up to `max_gap` (0 = adjacent only), unless the
//! PLC wants one request per tag. A multi-register value is always read by one request, so it is never torn.
//! No I/O; property-tested.

use crate::config::{Config, MachineConfig, PlcConfig, TagAddress};
use crate::logic::decode::Table;

/// Largest number of bits in one coil/discrete read (Modbus application protocol, FC 1 and 2).
pub const MAX_BITS_PER_REQUEST: u16 = 2000;

/// One Modbus read request covering one or more tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Unit id.
    pub unit_id: u8,
    /// Table (selects the function code).
    pub table: Table,
    /// First address.
    pub start: u16,
    /// Number of registers or bits.
    pub count: u16,
    /// Indices into [`ReadPlan::tags`] served by this request.
    pub tags: Vec<usize>,
}

impl ReadRequest {
    /// The words of `tag` inside this request's answer `words`, if the tag lies within the request.
    pub fn words_of<'a>(&self, tag: &TagAddress, words: &'a [u16]) -> Option<&'a [u16]> {
        let offset = usize::from(tag.address.checked_sub(self.start)?);
        words.get(offset..offset + usize::from(tag.count()))
    }
}

/// How a PLC wants its tags merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Largest register count of one request (bits: [`MAX_BITS_PER_REQUEST`]).
    pub max_registers: u16,
    /// Largest run of unread addresses bridged between two tags; 0 merges only adjacent tags.
    pub max_gap: u16,
    /// Never merge: one request per tag (devices that reject merged reads).
    pub one_request_per_tag: bool,
}

impl PlanLimits {
    /// The limits configured for one PLC.
    pub fn of(plc: &PlcConfig) -> Self {
        Self {
            max_registers: plc.max_registers_per_request,
            max_gap: plc.max_gap,
            one_request_per_tag: plc.one_request_per_tag,
        }
    }
}

/// What one PLC task reads each cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    /// Distinct tags, in a stable order the processor relies on.
    pub tags: Vec<TagAddress>,
    /// Requests covering every tag exactly once; a multi-register value is never split.
    pub requests: Vec<ReadRequest>,
}

impl ReadPlan {
    /// Builds the plan for PLC `plc`: every tag of its machines, merged as the PLC's limits allow.
    pub fn for_plc(config: &Config, plc: usize) -> ReadPlan {
        let mut tags: Vec<TagAddress> = Vec::new();
        for (_, machine) in config.machines_of(plc) {
            for tag in machine_tags(machine) {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
        }
        ReadPlan::from_tags(tags, &config.plcs[plc])
    }

    /// Builds a plan for an explicit tag list (tests, interop checks) with `plc`'s limits; duplicates are kept
    /// once.
    pub fn from_tags(tags: Vec<TagAddress>, plc: &PlcConfig) -> ReadPlan {
        let mut distinct: Vec<TagAddress> = Vec::with_capacity(tags.len());
        for tag in tags {
            if !distinct.contains(&tag) {
                distinct.push(tag);
            }
        }
        let requests = plan(&distinct, &PlanLimits::of(plc));
        ReadPlan {
            tags: distinct,
            requests,
        }
    }

    /// Index of `tag` in [`ReadPlan::tags`].
    pub fn index_of(&self, tag: &TagAddress) -> Option<usize> {
        self.tags.iter().position(|t| t == tag)
    }

    /// The distinct unit ids of the plan, ascending.
    pub fn units(&self) -> Vec<u8> {
        let mut units: Vec<u8> = self.requests.iter().map(|r| r.unit_id).collect();
        units.sort_unstable();
        units.dedup();
        units
    }

    /// Replaces request `index` by one request per tag (a device that rejects the merged read), keeping the
    /// first in place and appending the others; returns the indices of all of them.
    pub fn split(&mut self, index: usize) -> Vec<usize> {
        let request = self.requests[index].clone();
        let singles: Vec<ReadRequest> = request
            .tags
            .iter()
            .map(|&tag_index| single(&self.tags[tag_index], tag_index))
            .collect();
        let mut indices = vec![index];
        let mut singles = singles.into_iter();
        if let Some(first) = singles.next() {
            self.requests[index] = first;
        }
        for request in singles {
            indices.push(self.requests.len());
            self.requests.push(request);
        }
        indices
    }
}

/// Every tag a machine needs, in a fixed order.
pub fn machine_tags(machine: &MachineConfig) -> Vec<TagAddress> {
    let mut tags = vec![machine.produced.tag];
    tags.extend(machine.defective.iter().map(|c| c.tag));
    tags.extend(machine.defect_reasons.iter().map(|(_, c)| c.tag));
    tags.extend(machine.state.iter().map(|s| s.tag));
    tags
}

/// Merges tags into requests of at most `max_registers` registers, bridging gaps of up to `max_gap`.
pub fn plan_requests(tags: &[TagAddress], max_registers: u16, max_gap: u16) -> Vec<ReadRequest> {
    plan(
        tags,
        &PlanLimits {
            max_registers,
            max_gap,
            one_request_per_tag: false,
        },
    )
}

/// Merges tags into requests as `limits` allow. Pure; property-tested.
///
/// A tag wider than the limit (a u64 with `max_registers` below 4) still gets one request of its own width:
/// splitting it would tear the value, so the limit yields.
pub fn plan(tags: &[TagAddress], limits: &PlanLimits) -> Vec<ReadRequest> {
    let mut order: Vec<usize> = (0..tags.len()).collect();
    order.sort_by_key(|&i| (tags[i].unit_id, tags[i].table, tags[i].address, i));
    if limits.one_request_per_tag {
        return order.into_iter().map(|i| single(&tags[i], i)).collect();
    }
    let mut requests: Vec<ReadRequest> = Vec::new();
    for i in order {
        let tag = &tags[i];
        let limit = u32::from(match tag.table {
            Table::Coil | Table::Discrete => MAX_BITS_PER_REQUEST,
            Table::Input | Table::Holding => limits.max_registers,
        });
        let tag_start = u32::from(tag.address);
        let tag_end = tag_start + u32::from(tag.count());
        if let Some(last) = requests.last_mut() {
            let last_start = u32::from(last.start);
            let last_end = last_start + u32::from(last.count);
            let same_block = last.unit_id == tag.unit_id && last.table == tag.table;
            let gap_ok = tag_start <= last_end + u32::from(limits.max_gap);
            let new_end = last_end.max(tag_end);
            if same_block && gap_ok && new_end - last_start <= limit {
                last.count = u16::try_from(new_end - last_start)
                    .expect("a merged request is no longer than its limit, a u16");
                last.tags.push(i);
                continue;
            }
        }
        requests.push(single(tag, i));
    }
    requests
}

fn single(tag: &TagAddress, index: usize) -> ReadRequest {
    ReadRequest {
        unit_id: tag.unit_id,
        table: tag.table,
        start: tag.address,
        count: tag.count(),
        tags: vec![index],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::decode::{DataType, Encoding, WordOrder};
    use proptest::prelude::*;

    fn tag(unit_id: u8, table: Table, address: u16, data_type: DataType) -> TagAddress {
        TagAddress {
            unit_id,
            table,
            address,
            encoding: Encoding {
                data_type,
                word_order: WordOrder::Big,
                byte_swap: false,
            },
            bit: None,
        }
    }

    fn limits(max_registers: u16, max_gap: u16, one_request_per_tag: bool) -> PlanLimits {
        PlanLimits {
            max_registers,
            max_gap,
            one_request_per_tag,
        }
    }

    #[test]
    fn given_adjacent_tags_of_one_unit_when_planned_then_they_merge_into_one_request() {
        let tags = [
            tag(1, Table::Holding, 100, DataType::U32),
            tag(1, Table::Holding, 102, DataType::U32),
            tag(1, Table::Holding, 120, DataType::U16),
            tag(2, Table::Holding, 100, DataType::U32),
        ];
        let plan = plan_requests(&tags, 125, 16);
        assert_eq!(plan.len(), 2);
        assert_eq!((plan[0].start, plan[0].count), (100, 21));
        assert_eq!(plan[1].unit_id, 2);
    }

    #[test]
    fn given_u32_straddling_the_limit_when_planned_then_it_starts_a_new_request_and_is_never_torn()
    {
        // Limit 3: a naive register-by-register split would read 100..103 and 103..104, tearing the u32 at 102.
        let tags = [
            tag(1, Table::Holding, 100, DataType::U16),
            tag(1, Table::Holding, 101, DataType::U16),
            tag(1, Table::Holding, 102, DataType::U32),
        ];

        let plan = plan_requests(&tags, 3, 16);

        assert_eq!(
            plan.iter()
                .map(|r| (r.start, r.count, r.tags.clone()))
                .collect::<Vec<_>>(),
            vec![(100, 2, vec![0, 1]), (102, 2, vec![2])]
        );
        let words = [0x0001, 0x0002, 0x0003, 0x0004];
        assert_eq!(plan[1].words_of(&tags[2], &words[..2]), Some(&words[..2]));
    }

    #[test]
    fn given_u64_wider_than_the_limit_when_planned_then_it_gets_one_request_of_its_own_width() {
        let tags = [
            tag(1, Table::Holding, 10, DataType::U64),
            tag(1, Table::Holding, 14, DataType::U16),
        ];
        let plan = plan_requests(&tags, 2, 0);
        assert_eq!(
            plan.iter().map(|r| (r.start, r.count)).collect::<Vec<_>>(),
            vec![(10, 4), (14, 1)]
        );
    }

    #[test]
    fn given_max_gap_zero_when_planned_then_only_adjacent_tags_merge() {
        let tags = [
            tag(1, Table::Holding, 0, DataType::U32),
            tag(1, Table::Holding, 2, DataType::U16),
            tag(1, Table::Holding, 4, DataType::U16),
        ];
        let plan = plan(&tags, &limits(125, 0, false));
        assert_eq!(
            plan.iter().map(|r| (r.start, r.count)).collect::<Vec<_>>(),
            vec![(0, 3), (4, 1)]
        );
        let bridged = super::plan(&tags, &limits(125, 1, false));
        assert_eq!(bridged.len(), 1);
    }

    #[test]
    fn given_one_request_per_tag_when_planned_then_adjacent_tags_stay_apart() {
        let tags = [
            tag(1, Table::Holding, 1, DataType::U32),
            tag(1, Table::Holding, 0, DataType::U16),
            tag(1, Table::Coil, 0, DataType::Bool),
        ];
        let plan = plan(&tags, &limits(125, 16, true));
        assert_eq!(
            plan.iter()
                .map(|r| (r.table, r.start, r.count, r.tags.clone()))
                .collect::<Vec<_>>(),
            vec![
                (Table::Coil, 0, 1, vec![2]),
                (Table::Holding, 0, 1, vec![1]),
                (Table::Holding, 1, 2, vec![0]),
            ]
        );
    }

    #[test]
    fn given_a_merged_request_when_split_then_each_tag_gets_its_own_request() {
        let tags = vec![
            tag(1, Table::Holding, 0, DataType::U32),
            tag(1, Table::Holding, 5, DataType::U16),
            tag(1, Table::Holding, 9, DataType::U16),
        ];
        let requests = plan_requests(&tags, 125, 16);
        let mut read_plan = ReadPlan { tags, requests };
        assert_eq!(read_plan.requests.len(), 1);

        let indices = read_plan.split(0);

        assert_eq!(indices, vec![0, 1, 2]);
        assert_eq!(
            read_plan
                .requests
                .iter()
                .map(|r| (r.start, r.count, r.tags.clone()))
                .collect::<Vec<_>>(),
            vec![(0, 2, vec![0]), (5, 1, vec![1]), (9, 1, vec![2])]
        );
    }

    fn arbitrary_tags() -> impl Strategy<Value = Vec<TagAddress>> {
        let types = [
            DataType::U16,
            DataType::I16,
            DataType::U32,
            DataType::F32,
            DataType::U64,
            DataType::F64,
        ];
        proptest::collection::vec((1u8..4, 0usize..3, 0u16..400, 0usize..types.len()), 1..40)
            .prop_map(move |raw| {
                let mut tags: Vec<TagAddress> = Vec::new();
                for (unit, table, address, t) in raw {
                    let tag = match table {
                        0 => tag(unit, Table::Coil, address, DataType::Bool),
                        1 => tag(unit, Table::Input, address, types[t]),
                        _ => tag(unit, Table::Holding, address, types[t]),
                    };
                    if !tags.contains(&tag) {
                        tags.push(tag);
                    }
                }
                tags
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x91a7),
            ..ProptestConfig::default()
        })]

        #[test]
        fn every_tag_is_covered_once_no_request_exceeds_the_limit_and_no_value_is_split(
            tags in arbitrary_tags(),
            max_registers in 4u16..=125,
            max_gap in 0u16..20,
            one_request_per_tag in any::<bool>(),
        ) {
            let limits = limits(max_registers, max_gap, one_request_per_tag);
            let plan = plan(&tags, &limits);
            let mut covered = vec![0; tags.len()];
            for request in &plan {
                let limit = match request.table {
                    Table::Coil | Table::Discrete => MAX_BITS_PER_REQUEST,
                    _ => max_registers,
                };
                prop_assert!(request.count <= limit);
                prop_assert!(u32::from(request.start) + u32::from(request.count) <= 65_536);
                if one_request_per_tag {
                    prop_assert_eq!(request.tags.len(), 1);
                }
                for &i in &request.tags {
                    covered[i] += 1;
                    let t = &tags[i];
                    prop_assert_eq!(t.unit_id, request.unit_id);
                    prop_assert_eq!(t.table, request.table);
                    // The whole value lies inside this one request: it cannot be torn.
                    prop_assert!(t.address >= request.start);
                    prop_assert!(
                        u32::from(t.address) + u32::from(t.count())
                            <= u32::from(request.start) + u32::from(request.count)
                    );
                }
            }
            prop_assert!(covered.iter().all(|&c| c == 1));
        }

        #[test]
        fn merged_requests_bridge_no_gap_wider_than_max_gap(
            tags in arbitrary_tags(),
            max_gap in 0u16..20,
        ) {
            let plan = plan(&tags, &limits(125, max_gap, false));
            for request in &plan {
                let mut spans: Vec<(u32, u32)> = request
                    .tags
                    .iter()
                    .map(|&i| {
                        let start = u32::from(tags[i].address);
                        (start, start + u32::from(tags[i].count()))
                    })
                    .collect();
                spans.sort_unstable();
                let mut covered_to = spans[0].1;
                for &(start, end) in &spans[1..] {
                    prop_assert!(start <= covered_to + u32::from(max_gap));
                    covered_to = covered_to.max(end);
                }
                prop_assert_eq!(u32::from(request.start), spans[0].0);
                prop_assert_eq!(u32::from(request.start) + u32::from(request.count), covered_to);
            }
        }
    }
}
