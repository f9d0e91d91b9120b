package hatracker

// Label is a label pair, for callers whose series carry a plain list.
type Label struct {
	Name, Value string
}

// FindHALabels returns the values of the cluster and replica labels of a
// series. get returns the value of the named label, "" when absent;
// Prometheus' labels.Labels.Get fits, and so does a closure over a remote
// write 2.0 symbol table. ok is false unless both values are non-empty: a
// series with only one of the two labels is not from an HA pair and is stored
// as it is, with no label removed (as in Cortex).
//
// Like Cortex, the distributor may look only at the first series of a
// request, since an HA sender puts the same external labels on every series.
func FindHALabels(get func(name string) string, clusterLabel, replicaLabel string) (cluster, replica string, ok bool) {
	cluster, replica = get(clusterLabel), get(replicaLabel)
	return cluster, replica, cluster != "" && replica != ""
}

// FindHALabelsInList is [FindHALabels] over a list of label pairs. When a name
// repeats, the first occurrence wins.
func FindHALabelsInList(lbls []Label, clusterLabel, replicaLabel string) (cluster, replica string, ok bool) {
	var foundCluster, foundReplica bool
	for _, l := range lbls {
		switch {
		case !foundCluster && l.Name == clusterLabel:
			cluster, foundCluster = l.Value, true
		case !foundReplica && l.Name == replicaLabel:
			replica, foundReplica = l.Value, true
		}
		if foundCluster && foundReplica {
			break
		}
	}
	return cluster, replica, cluster != "" && replica != ""
}
