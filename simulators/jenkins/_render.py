"""The Jenkins simulator's JSON, as Jenkins renders it (``api/json`` with ``depth`` and ``tree``).

Why apart: the shapes python-jenkins reads (jobs, builds, queue items, computers)
are many and long; the state stays free of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from simulators.jenkins._model import (
    _BUILD_CLASSES,
    _COLORS,
    _JOB_CLASSES,
    _PERMALINKS,
    _Build,
    _Job,
    _QueueItem,
)
from simulators.jenkins._seed import _seed_text
from simulators.jenkins._state import _State, _time_span


class _Renderer:
    """Builds the JSON bodies; ``base`` is the server URL as the client reached it."""

    def __init__(self, state: _State, base: str, now: float) -> None:
        self.state = state
        self.base = base
        self.now = now

    def color(self, job: _Job) -> str:
        if job.disabled:
            return "disabled"
        completed = _State.permalink(job, "lastCompletedBuild")
        color = _COLORS[completed.result or "NOT_BUILT"] if completed else "notbuilt"
        if job.builds and job.builds[-1].building:
            color += "_anime"
        return color

    def build_ref(self, build: _Build | None) -> dict[str, Any] | None:
        if build is None:
            return None
        return {"_class": _BUILD_CLASSES[build.job.kind], "number": build.number,
                "url": f"{self.base}{build.job.path}{build.number}/"}

    def summary(self, job: _Job) -> dict[str, Any]:
        data: dict[str, Any] = {"_class": _JOB_CLASSES[job.kind], "name": job.name,
                                "url": f"{self.base}{job.path}"}
        if not job.is_folder:
            data["color"] = self.color(job)  # Jenkins gives folders no color
        return data

    def jobs_list(self, jobs: Sequence[_Job], depth: int, full: bool) -> list[dict[str, Any]]:
        ordered = sorted(jobs, key=lambda j: j.name.lower())
        if full or depth >= 1:
            return [self.job(job, depth - 1, full) for job in ordered]
        return [self.summary(job) for job in ordered]

    def root(self, depth: int, full: bool) -> dict[str, Any]:
        all_view = {"_class": "hudson.model.AllView", "name": "all", "url": self.base}
        return {
            "_class": "hudson.model.Hudson",
            "assignedLabels": [{"name": "built-in"}],
            "mode": "NORMAL",
            "nodeDescription": "the Jenkins controller's built-in node",
            "nodeName": "",
            "numExecutors": self.state.executors,
            "description": None,
            "jobs": self.jobs_list(self.state.seed.top, depth, full),
            "overallLoad": {},
            "primaryView": all_view,
            "quietDownReason": None,
            "quietingDown": False,
            "slaveAgentPort": -1,
            "unlabeledLoad": {"_class": "jenkins.model.UnlabeledLoadStatistics"},
            "url": self.base,
            "useCrumbs": True,
            "useSecurity": True,
            "views": [all_view],
        }

    def health(self, job: _Job) -> list[dict[str, Any]]:
        recent = [b for b in reversed(job.builds) if not b.building][:5]
        if not recent:
            return []
        failed = sum(1 for b in recent if b.result == "FAILURE")
        score = 100 - 100 * failed // len(recent)
        icon = next(name for low, name in ((80, "80plus"), (60, "60to79"), (40, "40to59"),
                                           (20, "20to39"), (-1, "00to19")) if score > low)
        description = ("Build stability: No recent builds failed." if not failed else
                       f"Build stability: {failed} out of the last {len(recent)} builds failed.")
        return [{"description": description, "iconClassName": f"icon-health-{icon}",
                 "iconUrl": f"health-{icon}.png", "score": score}]

    def estimated_ms(self, job: _Job) -> int:
        done = [b for b in reversed(job.builds) if not b.building]
        good = [b for b in done if b.result in ("SUCCESS", "UNSTABLE")][:3] or done[:3]
        if not good:
            return -1
        return int(sum(b.ends_at - b.started_at for b in good) / len(good) * 1000)

    def job(self, job: _Job, depth: int = 0, full: bool = False) -> dict[str, Any]:
        """Job or folder JSON; ``full`` (a tree query) includes everything, nested."""
        url = f"{self.base}{job.path}"
        data: dict[str, Any] = {"_class": _JOB_CLASSES[job.kind]}
        if job.is_folder:
            view = {"_class": "hudson.model.AllView", "name": "All", "url": url}
            data.update(actions=[{}], description=job.description or None,
                        displayName=job.name, displayNameOrNull=None,
                        fullDisplayName=job.display, fullName=job.full_name, name=job.name,
                        url=url, healthReport=[],
                        jobs=self.jobs_list(job.children, depth, full),
                        primaryView=view, views=[view])
            return data
        expand = full or depth >= 1

        def ref(build: _Build | None) -> dict[str, Any] | None:
            if build is None or not expand:
                return self.build_ref(build)
            return self.build(build)

        definitions = [param.definition_json() for param in job.params]
        prop = ([{"_class": "hudson.model.ParametersDefinitionProperty",
                  "parameterDefinitions": definitions}] if definitions else [])
        newest = list(reversed(job.builds))
        item = self.state.pending_item(job)
        data.update(
            actions=prop + [{}, {"_class": "org.jenkinsci.plugins.displayurlapi.actions"
                                           ".JobDisplayAction"}],
            description=job.description or None,
            displayName=job.name,
            displayNameOrNull=None,
            fullDisplayName=job.display,
            fullName=job.full_name,
            name=job.name,
            url=url,
            buildable=not job.disabled,
            builds=[ref(b) for b in newest[:100]],
            color=self.color(job),
            firstBuild=ref(job.builds[0] if job.builds else None),
            healthReport=self.health(job),
            inQueue=item is not None,
            keepDependencies=False,
        )
        for name in _PERMALINKS:
            data[name] = ref(_State.permalink(job, name))
        data.update(
            nextBuildNumber=job.next_number,
            property=prop,
            queueItem=self.queue_item(item) if item else None,
            concurrentBuild=job.concurrent,
            disabled=job.disabled,
        )
        if job.kind == "freestyle":
            data.update(downstreamProjects=[], labelExpression=None,
                        scm={"_class": "hudson.plugins.git.GitSCM" if job.scm
                             else "hudson.scm.NullSCM"},
                        upstreamProjects=[])
        else:
            data["resumeBlocked"] = False
        if full:
            data["allBuilds"] = [ref(b) for b in newest]
        return data

    def build(self, build: _Build) -> dict[str, Any]:
        job = build.job
        actions: list[dict[str, Any]] = []
        if build.params:
            actions.append({"_class": "hudson.model.ParametersAction",
                            "parameters": [p.value_json(v) for p, v in build.params]})
        actions.append({"_class": "hudson.model.CauseAction", "causes": [build.cause.to_json()]})
        if job.scm:
            branch = f"refs/remotes/origin/{build.parameters.get('BRANCH', 'main')}"
            revision = {"SHA1": build.commit, "branch": [{"SHA1": build.commit, "name": branch}]}
            actions.append({
                "_class": "hudson.plugins.git.util.BuildData",
                "buildsByBranchName": {branch: {
                    "_class": "hudson.plugins.git.util.Build", "buildNumber": build.number,
                    "buildResult": None, "marked": revision, "revision": revision}},
                "lastBuiltRevision": revision,
                "remoteUrls": [job.scm],
                "scmName": "",
            })
        actions.append({"_class": "org.jenkinsci.plugins.displayurlapi.actions.RunDisplayAction"})
        building = build.building
        data: dict[str, Any] = {
            "_class": _BUILD_CLASSES[job.kind],
            "actions": actions,
            "artifacts": [],
            "building": building,
            "description": None,
            "displayName": f"#{build.number}",
            "duration": 0 if building else int((build.ends_at - build.started_at) * 1000),
            "estimatedDuration": self.estimated_ms(job),
            "executor": {"_class": "hudson.model.Executor"} if building else None,
            "fullDisplayName": f"{job.display} #{build.number}",
            "id": str(build.number),
            "keepLog": False,
            "number": build.number,
            "queueId": build.queue_id,
            "result": build.result,
            "timestamp": int(build.started_at * 1000),
            "url": f"{self.base}{job.path}{build.number}/",
        }
        index = job.builds.index(build)
        if job.kind == "freestyle":
            data.update(builtOn="", changeSet={"_class": "hudson.scm.EmptyChangeLogSet",
                                               "items": [], "kind": None}, culprits=[])
        else:
            data.update(changeSets=[], culprits=[], inProgress=building,
                        nextBuild=self.build_ref(job.builds[index + 1]
                                                 if index + 1 < len(job.builds) else None),
                        previousBuild=self.build_ref(job.builds[index - 1] if index else None))
        return data

    def queue_item(self, item: _QueueItem) -> dict[str, Any]:
        actions: list[dict[str, Any]] = []
        if item.params:
            actions.append({"_class": "hudson.model.ParametersAction",
                            "parameters": [p.value_json(v) for p, v in item.params]})
        actions.append({"_class": "hudson.model.CauseAction", "causes": [item.cause.to_json()]})
        data: dict[str, Any] = {
            "actions": actions, "blocked": False, "buildable": False, "id": item.id,
            "inQueueSince": int(item.queued_at * 1000),
            "params": "".join(f"\n{p.name}={_seed_text(v)}" for p, v in item.params
                              if p.kind != "password"),
            "stuck": False,
            "task": {"_class": _JOB_CLASSES[item.job.kind], "name": item.job.name,
                     "url": f"{self.base}{item.job.path}", "color": self.color(item.job)},
            "url": f"queue/item/{item.id}/",
            "why": None,
        }
        if item.left_at is not None:
            return {"_class": "hudson.model.Queue$LeftItem", **data, "cancelled": item.cancelled,
                    "executable": self.build_ref(item.build)}
        if item.ready_at > self.now:
            return {"_class": "hudson.model.Queue$WaitingItem", **data,
                    "why": "In the quiet period. Expires in "
                           + _time_span(item.ready_at - self.now),
                    "timestamp": int(item.ready_at * 1000)}
        running = next((b for b in self.state.running if b.job is item.job), None)
        if running is not None and not item.job.concurrent:
            return {"_class": "hudson.model.Queue$BlockedItem", **data, "blocked": True,
                    "why": f"Build #{running.number} is already in progress "
                           f"(ETA: {_time_span(running.ends_at - self.now)})"}
        return {"_class": "hudson.model.Queue$BuildableItem", **data, "buildable": True,
                "pending": False, "why": "Waiting for next available executor"}

    def computer(self) -> dict[str, Any]:
        running = sorted(self.state.running, key=lambda b: b.started_at)
        slots = max(self.state.executors, len(running))
        executors = []
        for number in range(slots):
            build = running[number] if number < len(running) else None
            progress = -1
            if build is not None and build.planned_seconds:
                progress = min(99, int(100 * (self.now - build.started_at) / build.planned_seconds))
            executors.append({"_class": "hudson.model.Executor",
                              "currentExecutable": self.build_ref(build), "idle": build is None,
                              "likelyStuck": False, "number": number, "progress": progress})
        return {
            "_class": "hudson.model.Hudson$MasterComputer",
            "actions": [],
            "assignedLabels": [{"name": "built-in"}],
            "description": "the Jenkins controller's built-in node",
            "displayName": "Built-In Node",
            "executors": executors,
            "icon": "symbol-computer",
            "iconClassName": "symbol-computer",
            "idle": not running,
            "jnlpAgent": False,
            "launchSupported": True,
            "manualLaunchAllowed": True,
            "monitorData": {},
            "numExecutors": self.state.executors,
            "offline": False,
            "offlineCause": None,
            "offlineCauseReason": "",
            "oneOffExecutors": [],
            "temporarilyOffline": False,
        }

    def user(self, user_id: str) -> dict[str, Any]:
        return {"_class": "hudson.model.User", "absoluteUrl": f"{self.base}user/{quote(user_id)}",
                "description": None, "fullName": self.state.display_name(user_id),
                "id": user_id, "property": [
                    {"_class": "jenkins.security.ApiTokenProperty"},
                    {"_class": "hudson.model.MyViewsProperty"},
                    {"_class": "hudson.tasks.Mailer$UserProperty",
                     "address": f"{user_id}@example.com"}]}
