kubectl get clearapiclients.clear-operator.io --all-namespaces -o go-template='{{range .items}}{{$ns := .metadata.namespace}}{{$name := .metadata.name}}{{range $i, $f := .metadata.finalizers}}{{if eq $f "clear-operator.io/revoke-on-delete"}}{{$ns}} {{$name}} {{$i}}{{"\n"}}{{end}}{{end}}{{end}}' |
while read -r ns name i; do
  kubectl patch clearapiclients.clear-operator.io "$name" -n "$ns" --type=json \
    -p "[{\"op\":\"test\",\"path\":\"/metadata/finalizers/$i\",\"value\":\"clear-operator.io/revoke-on-delete\"},{\"op\":\"remove\",\"path\":\"/metadata/finalizers/$i\"}]"
done
