"""Reading stored chains for the chain browser: datasets with their counts, chains matching a
filter, the filter menus' choices, one chain; a dataset's data-quality report and flagged-chain
policy (what the Data tab shows and the Train form and `launch.py train` warn from).

Why each chain comes back as a ChainRecord: the record is the contract (core.data.chain_record);
the browser reads its attributes, so a change in the stored JSON shows up here, in one place.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.config import FlaggedPolicy
from core.data.chain_record import ChainRecord
from core.data.quality import teaching_warnings
from jobs.records import Chain, ChainDataset, Job
from jobs.results import dataset_quality
from jobs.views import ChainFacets, ChainFilter, ChainView, DatasetQualityView, DatasetSummary

#: Enough for every chain of a generated dataset, for the filter menus.
ALL_CHAINS = 100_000


def find_dataset(session: Session, dataset_id: int) -> ChainDataset:
    dataset = session.get(ChainDataset, dataset_id)
    if dataset is None:
        raise LookupError(f"There is no chain dataset {dataset_id}: pick one from the list (refresh it first).")
    return dataset


def find_chain(session: Session, chain_pk: int) -> Chain:
    row = session.get(Chain, chain_pk)
    if row is None:
        raise LookupError(f"There is no chain {chain_pk}: select a row of the chain table first.")
    return row


def chain_view(row: Chain) -> ChainView:
    return ChainView(row.id, ChainRecord.from_dict(row.record or {}, f"chain {row.chain_id} (row {row.id})"))


def dataset_summaries(sessions: sessionmaker[Session]) -> list[DatasetSummary]:
    """Every chain dataset, newest first, with its kept / flagged / dropped counts."""
    counts = select(Chain.dataset_id, Chain.dropped, Chain.flagged, func.count()).group_by(
        Chain.dataset_id, Chain.dropped, Chain.flagged)
    with sessions() as session:
        tally: dict[int, dict[str, int]] = {}
        for dataset_id, dropped, flagged, n in session.execute(counts):
            slot = tally.setdefault(dataset_id, {"kept": 0, "flagged": 0, "dropped": 0})
            slot["dropped" if dropped else "kept"] += n
            slot["flagged"] += n if flagged and not dropped else 0
        rows = session.scalars(select(ChainDataset).order_by(ChainDataset.id.desc())).all()
        return [DatasetSummary(d.id, d.name, d.job_id, **tally.get(d.id, {"kept": 0, "flagged": 0, "dropped": 0}),
                               path=d.path) for d in rows]


def chain_views(sessions: sessionmaker[Session], dataset_id: int, filters: ChainFilter = ChainFilter(), *,
                limit: int | None = 500) -> list[ChainView]:
    """Kept chains of a dataset matching every given filter, in generation order (None: all)."""
    query = select(Chain).where(Chain.dataset_id == dataset_id, Chain.dropped.is_(False)).order_by(Chain.id)
    if filters.shape is not None:
        query = query.where(Chain.shape == filters.shape.value)
    if filters.flagged is not None:
        query = query.where(Chain.flagged.is_(filters.flagged))
    with sessions() as session:
        find_dataset(session, dataset_id)
        views = [chain_view(row) for row in session.scalars(query)]
    if filters.category is not None:
        views = [v for v in views if v.record.category == filters.category]
    if filters.kind is not None:
        views = [v for v in views if v.record.kind is filters.kind]
    return views[:limit]


def chain_facets(sessions: sessionmaker[Session], dataset_id: int) -> ChainFacets:
    records = [view.record for view in chain_views(sessions, dataset_id, limit=ALL_CHAINS)]
    kinds = {r.kind for r in records if r.kind is not None}
    return ChainFacets(tuple(sorted({r.category for r in records if r.category})),
                       tuple(sorted(kinds, key=lambda kind: kind.value)))


def stored_chain(sessions: sessionmaker[Session], chain_pk: int) -> ChainView:
    with sessions() as session:
        return chain_view(find_chain(session, chain_pk))


def _policy(value: Any) -> FlaggedPolicy | None:
    try:
        return FlaggedPolicy(value)
    except ValueError:
        return None


def dataset_flagged_policy(session: Session, dataset: ChainDataset) -> FlaggedPolicy | None:
    """The flagged-chain policy a dataset was generated with: its generate job's settings (the
    user's choice, even before a chain is written), else what its first chain recorded."""
    job = session.get(Job, dataset.job_id) if dataset.job_id is not None else None
    settings = (job.config or {}).get("generate") if job is not None else None
    if isinstance(settings, Mapping):
        return _policy(settings.get("flagged_policy", FlaggedPolicy.REGENERATE.value))
    first = session.scalars(select(Chain.record).where(Chain.dataset_id == dataset.id).order_by(Chain.id).limit(1)).first()
    return _policy((first or {}).get("flagged_policy"))


def training_dataset_policy(session: Session, config: Mapping[str, Any]) -> FlaggedPolicy | None:
    """The flagged-chain policy of the stored dataset a training job's config names (None: it
    trains on a file or the sample chains, or the dataset is gone)."""
    dataset = session.get(ChainDataset, config["chain_dataset_id"]) if config.get("chain_dataset_id") else None
    return dataset_flagged_policy(session, dataset) if dataset is not None else None


def dataset_quality_view(sessions: sessionmaker[Session], dataset_id: int) -> DatasetQualityView:
    """A dataset's data-quality report (kept and dropped chains), its flagged-chain policy and
    the reasons it would not teach safety."""
    with sessions() as session:
        dataset = find_dataset(session, dataset_id)
        report = dataset_quality(session, dataset_id)
        return DatasetQualityView(dataset.id, dataset.name, report, dataset_flagged_policy(session, dataset),
                                  tuple(teaching_warnings(report)))
