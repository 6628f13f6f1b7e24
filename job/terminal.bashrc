# A JupyterLab terminal's bash (job/terminal.py): what a login shell reads, in bash's order,
# then this job's environment first on PATH again (Debian's /etc/profile sets PATH afresh).
if [ -r /etc/profile ]; then . /etc/profile; fi
for aifw_profile in ~/.bash_profile ~/.bash_login ~/.profile; do
  if [ -r "$aifw_profile" ]; then . "$aifw_profile"; break; fi
done
unset aifw_profile
if [ -n "${AIFACTORY_BIN:-}" ]; then
  case ":$PATH:" in
    "$AIFACTORY_BIN:"*) ;;
    *) PATH="$AIFACTORY_BIN:$PATH" ;;
  esac
  export PATH
fi
