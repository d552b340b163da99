package schemas_test

import "github.com/threatcrumbs/crumbs/schemas"

// Sample values of every schema with a generated codec, each field set to a value of its own,
// so that a field written to the wrong place shows.

func sampleEnvelope(kind string) schemas.Envelope {
	return schemas.Envelope{
		EventID: "0190d7a4-1b2c-7d3e-8f40-123456789abc",
		Time:    1_700_000_000_123_456_789,
		Host:    schemas.Host{ID: "4c4c4544-0042", Name: "web-1"},
		Kind:    kind,
	}
}

func sampleEnrichment() *schemas.Enrichment {
	return &schemas.Enrichment{
		Service: "checkout", Environment: "prod", Role: "web",
		Changes: []schemas.ChangeRef{{
			ID: "CHG-1042", Type: schemas.ChangeLaunch, Title: "Black Friday launch",
			Expected: []schemas.ExpectedEffect{
				{Service: "shop-db", Metric: "network_bytes", UpToFactor: 4},
				{Service: "shop", Metric: "process_count", UpToFactor: 1.5},
			},
		}},
		Deploy:        &schemas.DeployRef{ID: "DEP-77", Service: "checkout", Version: "1.4.2", DeployedAt: 1_699_000_000_000_000_000},
		Verdict:       schemas.VerdictMatch,
		VerdictReason: "sha256 in DEP-77",
		Account: &schemas.AccountRef{Name: "alice", Type: schemas.AccountHuman, Interactive: true,
			AllowedSources: []string{"10.20.0.0/16"}, AllowedUsers: []string{"bob", "carol"}},
	}
}

func sampleActor() schemas.Actor {
	return schemas.Actor{
		PID:         31337,
		File:        schemas.File{Path: "/usr/bin/ssh", Name: "ssh", SHA256: "9f86d081884c7d65"},
		CmdLine:     "ssh -p 2222 db-1",
		User:        schemas.User{UID: 1001, Name: "alice"},
		CgroupID:    4242,
		SystemdUnit: "session-3.scope",
		ContainerID: "c0ffee",
		Container:   &schemas.Container{Name: "web", Image: "docker.io/library/nginx:1.27", Runtime: "docker"},
	}
}

func sampleProcessEvent(enriched bool) *schemas.ProcessEvent {
	e := &schemas.ProcessEvent{
		Envelope: sampleEnvelope(schemas.KindProcess),
		Action:   schemas.ActionExec,
		Process: schemas.Process{
			PID:           4242,
			PPID:          1,
			CmdLine:       "/usr/bin/curl -s https://example.com",
			Args:          []string{"/usr/bin/curl", "-s", "https://example.com"},
			ArgsTruncated: true,
			CWD:           "/tmp",
			File:          schemas.File{Path: "/usr/bin/curl", Name: "curl", SHA256: "ab12"},
			UID:           1000,
			UserName:      "alice",
			GID:           1002,
			GroupName:     "staff",
			LoginUID:      4294967295,
			TTY:           "pts/0",
			CgroupID:      1 << 40,
			SystemdUnit:   "session-1.scope",
			ContainerID:   "c0ffee",
			Container: &schemas.Container{Name: "shop", Image: "registry.example/shop:1.4.2", ImageID: "sha256:5e2f",
				Runtime: "containerd", Pod: &schemas.Pod{Name: "shop-7d9f-x2x", Namespace: "prod", UID: "6b1c",
					Labels: []string{"app=shop", "tier=web"}, WorkloadKind: "Deployment", WorkloadName: "shop"}},
			ExitCode: -1,
			Parent: schemas.Parent{
				PID:       7,
				File:      schemas.File{Path: "/bin/bash", Name: "bash", SHA256: "cd34"},
				CmdLine:   "-bash",
				StartTime: 1_699_999_000_000_000_007,
			},
			StartTime:  1_699_999_999_000_004_242,
			EUID:       1003,
			EGID:       1004,
			SessionID:  6,
			StdinType:  schemas.FDSocketInet,
			StdoutType: schemas.FDPipe,
		},
	}
	if enriched {
		e.Enrichment = sampleEnrichment()
	}
	return e
}

func sampleNetworkEvent(enriched bool) *schemas.NetworkEvent {
	e := &schemas.NetworkEvent{
		Envelope: sampleEnvelope(schemas.KindNetwork),
		Action:   schemas.ActionClose,
		Process:  sampleActor(),
		Network: schemas.Network{
			Direction: "outbound", Protocol: "tcp", IPVersion: 4,
			Src:       schemas.Endpoint{IP: "10.0.0.5", Port: 51234, Hostname: "web-1"},
			Dst:       schemas.Endpoint{IP: "10.0.0.9", Port: 5432, Hostname: "db-1"},
			BytesSent: 1234, BytesReceived: 56789, Packets: 17, DurationNs: 3_000_000_000,
			DNSAnswers: []string{"10.0.0.9", "10.0.0.10"},
		},
	}
	if enriched {
		e.Enrichment = sampleEnrichment()
	}
	return e
}

func sampleFileEvent(enriched bool) *schemas.FileEvent {
	e := &schemas.FileEvent{
		Envelope: sampleEnvelope(schemas.KindFile),
		Action:   schemas.ActionScanChanged,
		Process:  sampleActor(),
		File: schemas.TargetFile{
			Path: "/opt/shop/bin/shop", Name: "shop", NewPath: "/opt/shop/bin/shop.new", SHA256: "e3b0c442",
			Size: 1 << 20, Owner: "shop", Group: "shopgrp", UID: 998, GID: 997, Mode: "0755",
			Changed: []string{"sha256", "mode"}, Mtime: 1_699_990_000_000_000_115,
		},
	}
	if enriched {
		e.Enrichment = sampleEnrichment()
	}
	return e
}

func sampleIdentityEvent(enriched bool) *schemas.IdentityEvent {
	e := &schemas.IdentityEvent{
		Envelope: sampleEnvelope(schemas.KindIdentity),
		Action:   schemas.ActionAuth,
		Process:  sampleActor(),
		Identity: schemas.Identity{
			Service: "sshd", User: "alice", TargetUser: "root", RemoteHost: "203.0.113.7",
			Result: schemas.ResultFailure, Code: 7, OldUID: 1001, NewUID: 0, OldGID: 1002, NewGID: 3,
		},
	}
	if enriched {
		e.Enrichment = sampleEnrichment()
	}
	return e
}

func sampleSystemEvent(enriched bool) *schemas.SystemEvent {
	e := &schemas.SystemEvent{
		Envelope: sampleEnvelope(schemas.KindSystem),
		System: schemas.System{
			Scope: "service", Unit: "shop.service", CgroupID: 77, IntervalNs: 10_000_000_000,
			CPUSeconds: 1.25, MemoryBytes: 512 << 20, ProcessCount: 12, Connections: 40,
			BytesSent: 123456, BytesReceived: 654321,
		},
	}
	if enriched {
		e.Enrichment = sampleEnrichment()
	}
	return e
}

func sampleAlert() *schemas.Alert {
	return &schemas.Alert{
		AlertID: "a1", Time: 1_700_000_000_000_000_000, RuleID: "curl-to-ip", Title: "curl to a bare IP",
		Severity: "high", Tags: []string{"attack.t1105", "attack.command_and_control"}, GroupKey: "web-1",
		Host: schemas.Host{ID: "m", Name: "web-1"}, Service: "checkout",
		WindowStart: 10, WindowEnd: 20, Count: 3, Evidence: []string{"e1", "e2", "e3"}, Summary: "3 events",
		Author: "Florian Roth", Level: "high", RuleSource: "sigma", OriginalSeverity: "critical",
		Changes: []string{"CHG-1042"}, Explanation: "CHG-1042 (launch) expects it", Version: 2,
		Final: true, IncidentID: "inc-1",
	}
}

func sampleIncident() *schemas.Incident {
	return &schemas.Incident{
		IncidentID: "i1", Version: 2, Final: true, Time: 10, LastTime: 20, Host: schemas.Host{ID: "m", Name: "web-1"},
		Service: "shop", TreeKey: "tree:812:1700000000", Subject: "process tree of /usr/sbin/sshd (pid 812)",
		Severity: "high", Alerts: 3, Events: 51,
		Rules: []schemas.IncidentRule{
			{RuleID: "r1", Title: "one", Severity: "high", Alerts: 2},
			{RuleID: "r2", Title: "two", Severity: "low", Alerts: 1},
		},
		AlertIDs: []string{"a1", "a2", "a3"}, Tags: []string{"attack.t1136"}, Summary: "3 alerts of 2 rules",
	}
}

func sampleChangeRecord() *schemas.ChangeRecord {
	return &schemas.ChangeRecord{
		Kind: schemas.ContextChange, ID: "CHG-1042", Type: schemas.ChangeLaunch, Title: "Black Friday launch",
		Services: []string{"shop"}, Hosts: []string{"web-1", "web-2"},
		StartsAt: 1_800_000_000_000_000_000, EndsAt: 1_800_086_400_000_000_000,
		Expected:  []schemas.ExpectedEffect{{Service: "shop-db", Metric: "network_bytes", UpToFactor: 4}},
		UpdatedAt: 1_700_000_000_000_000_001, Source: "api",
	}
}

func sampleDeployRecord() *schemas.DeployRecord {
	return &schemas.DeployRecord{
		Kind: schemas.ContextDeploy, ID: "DEP-77", Service: "shop", Version: "1.4.2", Hosts: []string{"web-1"},
		DeployedAt: 1_699_000_000_000_000_000,
		Artifacts: []schemas.Artifact{
			{Path: "/opt/shop/bin/shop", SHA256: "9f86d0", Owner: "shop", Group: "shop", Mode: "0755"},
			{Path: "/opt/shop/etc/shop.yaml", SHA256: "aa55", Owner: "root", Group: "shop", Mode: "0640"},
		},
		UpdatedAt: 1_700_000_000_000_000_002, Source: "ci",
	}
}

func sampleAccountRecord() *schemas.AccountRecord {
	return &schemas.AccountRecord{
		Kind: schemas.ContextAccount, ID: "oracle", Name: "oracle", Type: schemas.AccountService, Interactive: true,
		AllowedSources: []string{"10.20.0.0/16"}, AllowedUsers: []string{"alice", "bob"},
		UpdatedAt: 1_700_000_000_000_000_003, Source: "dir",
	}
}

func sampleInventoryRecord() *schemas.InventoryRecord {
	return &schemas.InventoryRecord{
		Kind: schemas.ContextInventory, ID: "web-1", Host: "web-1", Service: "shop", Environment: "prod", Role: "web",
		UpdatedAt: 1_700_000_000_000_000_004,
	}
}
